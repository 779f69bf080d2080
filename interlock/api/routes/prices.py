"""Price overrides per (backend, model) (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from interlock.api.crud import prices as crud
from interlock.api.deps import AdminDep, SessionDep
from interlock.api.routes.params import IdPath
from interlock.api.schemas import PriceCreate, PricePublic, PricesPublic, PriceUpdate

__all__ = ["router"]

router = APIRouter(prefix="/v1/prices", tags=["prices"])


@router.post("", status_code=201)
async def create_price(body: PriceCreate, session: SessionDep, _: AdminDep) -> PricePublic:
    return PricePublic.model_validate(await crud.create_price(session=session, price_in=body))


@router.get("")
async def list_prices(session: SessionDep, _: AdminDep) -> PricesPublic:
    return PricesPublic(data=[PricePublic.model_validate(p) for p in await crud.list_prices(session=session)])


@router.get("/{price_id}")
async def get_price(price_id: IdPath, session: SessionDep, _: AdminDep) -> PricePublic:
    return PricePublic.model_validate(await crud.get_price(session=session, price_id=price_id))


@router.patch("/{price_id}")
async def update_price(price_id: IdPath, body: PriceUpdate, session: SessionDep, _: AdminDep) -> PricePublic:
    return PricePublic.model_validate(await crud.update_price(session=session, price_id=price_id, price_in=body))


@router.delete("/{price_id}", status_code=204)
async def delete_price(price_id: IdPath, session: SessionDep, _: AdminDep) -> Response:
    await crud.delete_price(session=session, price_id=price_id)
    return Response(status_code=204)
