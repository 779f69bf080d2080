"""Price overrides per (backend, model): they win over the manifests' prices in every gateway's snapshot."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.commit import commit_unique
from interlock.api.errors import InvalidError, NotFoundError
from interlock.api.schemas import PriceCreate, PriceUpdate
from interlock.db.models import Price

__all__ = ["create_price", "delete_price", "get_price", "list_prices", "update_price"]


async def create_price(*, session: AsyncSession, price_in: PriceCreate) -> Price:
    price = Price(**price_in.model_dump())
    session.add(price)
    await commit_unique(session, f"a price for backend {price_in.backend!r}, model {price_in.model!r} exists")
    return price


async def get_price(*, session: AsyncSession, price_id: str) -> Price:
    price = await session.get(Price, price_id)
    if price is None:
        raise NotFoundError(f"price {price_id!r} not found")
    return price


async def list_prices(*, session: AsyncSession) -> Sequence[Price]:
    return (await session.scalars(select(Price).order_by(Price.backend, Price.model))).all()


async def update_price(*, session: AsyncSession, price_id: str, price_in: PriceUpdate) -> Price:
    price = await get_price(session=session, price_id=price_id)
    for field, value in price_in.model_dump(exclude_unset=True).items():
        if value is None and field != "cached_input_per_million":
            raise InvalidError(f"{field} cannot be null (only cached_input_per_million can be unset)")
        setattr(price, field, value)
    await session.commit()
    return price


async def delete_price(*, session: AsyncSession, price_id: str) -> None:
    price = await get_price(session=session, price_id=price_id)
    await session.delete(price)
    await session.commit()
