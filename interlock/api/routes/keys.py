"""Revoking a key by its id (admin only); creating and listing keys lives under the tenant."""

from __future__ import annotations

from fastapi import APIRouter, Response

from interlock.api.crud import keys as crud
from interlock.api.deps import AdminDep, SessionDep
from interlock.api.routes.params import IdPath

__all__ = ["router"]

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.delete("/{key_id}", status_code=204)
async def revoke_key(key_id: IdPath, session: SessionDep, _: AdminDep) -> Response:
    """Revoke the key: it leaves the next gateway snapshot, so it stops working within one poll interval."""
    await crud.revoke_key(session=session, key_id=key_id)
    return Response(status_code=204)
