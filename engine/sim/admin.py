"""The simulator's test controls under /__sim__/: faults, pinned prices, the clock, token revocation.

Not part of any broker's protocol; a simulator binds to loopback, so these need no credentials.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from engine.domain import InstrumentId
from engine.sim.faults import FaultRule
from engine.sim.venue import SimVenue


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def admin_routes(venue: SimVenue) -> Mount:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "broker": venue.settings.broker, "now": venue.clock().isoformat()})

    async def set_fault(request: Request) -> JSONResponse:
        body = await request.json()
        endpoint = str(body.pop("endpoint", "*"))
        try:
            rule = FaultRule(**body)
        except ValidationError as exc:
            return _bad(str(exc))
        venue.faults.set(endpoint, rule)
        return JSONResponse({"faults": {k: v.model_dump() for k, v in venue.faults.rules().items()}})

    async def clear_faults(request: Request) -> JSONResponse:
        venue.faults.clear()
        return JSONResponse({"faults": {}})

    async def pin_price(request: Request) -> JSONResponse:
        body = await request.json()
        try:
            instrument = InstrumentId.parse(str(body["instrument"]))
            venue.prices.set_price(instrument, Decimal(str(body["price"])))
        except (KeyError, ValueError, InvalidOperation) as exc:
            return _bad(f"expected {{instrument, price}}: {exc}")
        venue.tick()
        return JSONResponse({"instrument": str(instrument), "price": str(body["price"])})

    async def unpin_price(request: Request) -> JSONResponse:
        try:
            instrument = InstrumentId.parse(request.path_params["instrument"])
        except ValueError as exc:
            return _bad(str(exc))
        venue.prices.clear_price(instrument)
        return JSONResponse({"instrument": str(instrument)})

    async def set_clock(request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("reset"):
            venue.clock.reset()
        else:
            try:
                venue.clock.set(datetime.fromisoformat(str(body["at"])))
            except (KeyError, ValueError) as exc:
                return _bad(f"expected {{at: ISO 8601}} or {{reset: true}}: {exc}")
        return JSONResponse({"now": venue.clock().isoformat()})

    async def revoke(request: Request) -> JSONResponse:
        body = await request.json() if await request.body() else {}
        return JSONResponse({"revoked": venue.revoke(body.get("user_id"))})

    return Mount(
        "/__sim__",
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/faults", set_fault, methods=["POST"]),
            Route("/faults", clear_faults, methods=["DELETE"]),
            Route("/prices", pin_price, methods=["POST"]),
            Route("/prices/{instrument}", unpin_price, methods=["DELETE"]),
            Route("/clock", set_clock, methods=["POST"]),
            Route("/revoke", revoke, methods=["POST"]),
        ],
    )
