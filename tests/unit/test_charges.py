"""Order charges: every expected value below is worked out by hand from the April 2026 rate table."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest

from engine.domain import Exchange, InstrumentId, Product, Side
from engine.ledger.charges import (
    Charges,
    InstrumentKind,
    brokerage_schedule,
    instrument_kind,
    order_charges,
)

D = Decimal
B, S = Side.BUY, Side.SELL
EQ, FUT, OPT = InstrumentKind.EQUITY, InstrumentKind.FUTURE, InstrumentKind.OPTION

# Keys of the `charges` object in shared/reference/kite-mocks/virtual_contract_note.json (copied: CI clones only
# this repo).
KITE_CHARGES_KEYS = {
    "transaction_tax",
    "transaction_tax_type",
    "exchange_turnover_charge",
    "sebi_turnover_charge",
    "brokerage",
    "stamp_duty",
    "gst",
    "total",
}
KITE_GST_KEYS = {"igst", "cgst", "sgst", "total"}


def charges(brokerage: str, stt: str, exchange: str, sebi: str, stamp: str, gst: str) -> Charges:
    return Charges(D(brokerage), D(stt), D(exchange), D(sebi), D(stamp), D(gst))


# 10 × ₹1500 = ₹15,000: STT 0.1% = 15.00, exchange 0.4455 → 0.45, SEBI 0.015 → 0.02, stamp 0.015% = 2.25.
def test_zerodha_delivery_buy() -> None:
    c = order_charges("zerodha", EQ, Product.CNC, B, 10, D("1500"))
    # GST 18% × (0 + 0.45 + 0.02) = 0.0846 → 0.08
    assert c == charges("0", "15.00", "0.45", "0.02", "2.25", "0.08")
    assert c.total == D("17.80")


def test_zerodha_delivery_sell() -> None:
    c = order_charges("zerodha", EQ, Product.CNC, S, 10, D("1500"))
    assert c == charges("0", "15.00", "0.45", "0.02", "0", "0.08")
    assert c.total == D("15.55")


# 1000 × ₹2500 = ₹25,00,000: 0.03% would be ₹750, so the ₹20 cap applies.
def test_zerodha_intraday_buy_brokerage_capped_at_20() -> None:
    c = order_charges("zerodha", EQ, Product.MIS, B, 1000, D("2500"))
    # exchange 74.25, SEBI 2.50, stamp 0.003% = 75.00, GST 18% × 96.75 = 17.415 → 17.42, no STT on an intraday buy
    assert c == charges("20", "0", "74.25", "2.50", "75.00", "17.42")
    assert c.total == D("189.17")


# 10 × ₹500 = ₹5,000: 0.03% = ₹1.50, under the cap.
def test_zerodha_intraday_buy_small_order_pays_percentage() -> None:
    c = order_charges("zerodha", EQ, Product.MIS, B, 10, D("500"))
    # exchange 0.1485 → 0.15, SEBI 0.005 → 0.01, stamp 0.15, GST 18% × 1.66 = 0.2988 → 0.30
    assert c == charges("1.50", "0", "0.15", "0.01", "0.15", "0.30")
    assert c.total == D("2.11")


def test_zerodha_intraday_sell_pays_stt_and_no_stamp() -> None:
    c = order_charges("zerodha", EQ, Product.MIS, S, 10, D("500"))
    assert c == charges("1.50", "1.25", "0.15", "0.01", "0", "0.30")
    assert c.total == D("3.21")


# NIFTY future, 65 × ₹24,000 = ₹15,60,000: STT 0.05% = 780, exchange 0.00173% = 26.988 → 26.99, SEBI 1.56.
@pytest.mark.parametrize("product", [Product.NRML, Product.MIS])
def test_futures_sell(product: Product) -> None:
    c = order_charges("zerodha", FUT, product, S, 65, D("24000"))
    # brokerage min(468, 20) = 20, GST 18% × 48.55 = 8.739 → 8.74
    assert c == charges("20", "780.00", "26.99", "1.56", "0", "8.74")
    assert c.total == D("837.29")


# NIFTY call, 65 × ₹120.50 premium = ₹7,832.50.
def test_options_sell() -> None:
    c = order_charges("zerodha", OPT, Product.NRML, S, 65, D("120.50"))
    # STT 0.15% = 11.74875 → 11.75, exchange 0.03503% = 2.7437 → 2.74, SEBI 0.0078 → 0.01,
    # GST 18% × 22.75 = 4.095 → 4.10
    assert c == charges("20", "11.75", "2.74", "0.01", "0", "4.10")
    assert c.total == D("38.60")


def test_options_buy_pays_stamp_and_no_stt() -> None:
    c = order_charges("zerodha", OPT, Product.NRML, B, 65, D("120.50"))
    # stamp 0.003% = 0.234975 → 0.23
    assert c == charges("20", "0", "2.74", "0.01", "0.23", "4.10")
    assert c.total == D("27.08")


def test_upstox_delivery_flat_20() -> None:
    c = order_charges("upstox", EQ, Product.CNC, B, 10, D("1500"))
    # GST 18% × (20 + 0.45 + 0.02) = 3.6846 → 3.68
    assert c == charges("20", "15.00", "0.45", "0.02", "2.25", "3.68")
    assert c.total == D("41.40")


def test_upstox_intraday_and_angelone_options_pay_0_1_percent_under_the_cap() -> None:
    assert order_charges("upstox", EQ, Product.MIS, B, 10, D("500")).brokerage == D("5.00")
    assert order_charges("angelone", OPT, Product.NRML, S, 65, D("120.50")).brokerage == D("7.83")
    assert order_charges("angelone", EQ, Product.CNC, B, 1000, D("2500")).brokerage == D("20")


@pytest.mark.parametrize(
    ("broker", "kind", "product", "quantity", "price"),
    [
        ("zerodha", EQ, Product.CNC, 10, D("1500")),
        ("upstox", EQ, Product.CNC, 10, D("1500")),
        ("zerodha", EQ, Product.MIS, 1000, D("2500")),
        ("zerodha", FUT, Product.NRML, 65, D("24000")),
        ("angelone", OPT, Product.NRML, 65, D("120.50")),
    ],
)
def test_gst_is_18_percent_of_brokerage_exchange_and_sebi_only(
    broker: str, kind: InstrumentKind, product: Product, quantity: int, price: Decimal
) -> None:
    for side in (B, S):
        c = order_charges(broker, kind, product, side, quantity, price)
        base = c.brokerage + c.exchange_turnover + c.sebi_turnover
        assert c.gst == (base * D("0.18")).quantize(D("0.01"), rounding=ROUND_HALF_UP)
        assert c.total == base + c.gst + c.stt + c.stamp_duty


def test_gst_base_excludes_stt_and_stamp() -> None:
    c = order_charges("upstox", EQ, Product.CNC, B, 10, D("1500"))
    # 18% of everything else would be 18% × 37.72 = 6.79; the right base is 20.47 → 3.68
    assert c.gst == D("3.68")


@pytest.mark.parametrize(
    ("kind", "product", "price", "buy_stamp"),
    [
        (EQ, Product.CNC, D("1500"), D("2.25")),  # 0.015% of 15,000
        (EQ, Product.MIS, D("1500"), D("0.45")),  # 0.003%
        (FUT, Product.NRML, D("1500"), D("0.30")),  # 0.002%
        (OPT, Product.NRML, D("1500"), D("0.45")),  # 0.003%
    ],
)
def test_stamp_duty_only_on_buys(kind: InstrumentKind, product: Product, price: Decimal, buy_stamp: Decimal) -> None:
    assert order_charges("zerodha", kind, product, B, 10, price).stamp_duty == buy_stamp
    assert order_charges("zerodha", kind, product, S, 10, price).stamp_duty == D("0")


@pytest.mark.parametrize("broker", ["paper", "someotherbroker", "", "ZERODHA", " Zerodha "])
def test_unknown_and_paper_brokers_use_zerodha_schedule(broker: str) -> None:
    assert brokerage_schedule(broker) is brokerage_schedule("zerodha")
    assert order_charges(broker, EQ, Product.CNC, B, 10, D("1500")).brokerage == D("0")
    assert order_charges(broker, EQ, Product.MIS, B, 10, D("500")).brokerage == D("1.50")


def test_broker_lookup_is_case_insensitive_for_listed_brokers() -> None:
    assert order_charges("Upstox", EQ, Product.CNC, B, 10, D("1500")).brokerage == D("20")
    assert order_charges("ANGELONE", EQ, Product.MIS, B, 10, D("500")).brokerage == D("5.00")


def test_to_kite_json_has_the_mock_shape_and_numbers() -> None:
    kite = order_charges("zerodha", EQ, Product.CNC, B, 10, D("1500")).to_kite_json()
    assert set(kite) == KITE_CHARGES_KEYS
    assert isinstance(kite["gst"], dict)
    assert set(kite["gst"]) == KITE_GST_KEYS
    assert kite == {
        "transaction_tax": 15.0,
        "transaction_tax_type": "stt",
        "exchange_turnover_charge": 0.45,
        "sebi_turnover_charge": 0.02,
        "brokerage": 0.0,
        "stamp_duty": 2.25,
        "gst": {"igst": 0.08, "cgst": 0.0, "sgst": 0.0, "total": 0.08},
        "total": 17.8,
    }
    assert all(type(v) is float for k, v in kite.items() if k not in ("gst", "transaction_tax_type"))


@pytest.mark.parametrize(
    ("exchange", "symbol", "kind"),
    [
        (Exchange.NSE, "INFY", EQ),
        (Exchange.NSE, "BAJFINANCE", EQ),  # ends in CE but is a cash stock
        (Exchange.BSE, "RELIANCE", EQ),
        (Exchange.NFO, "NIFTY26APRFUT", FUT),
        (Exchange.MCX, "GOLDPETAL23JULFUT", FUT),
        (Exchange.NFO, "NIFTY2371317900PE", OPT),
        (Exchange.NFO, "NIFTY26APR24000CE", OPT),
        (Exchange.CDS, "USDINR26APR82.5CE", OPT),
    ],
)
def test_instrument_kind_from_symbol(exchange: Exchange, symbol: str, kind: InstrumentKind) -> None:
    assert instrument_kind(InstrumentId(exchange, symbol)) is kind


def test_derived_kind_prices_bajfinance_as_delivery_equity() -> None:
    kind = instrument_kind(InstrumentId(Exchange.NSE, "BAJFINANCE"))
    # 0.1% delivery STT on ₹15,000, not option-premium STT
    assert order_charges("zerodha", kind, Product.CNC, S, 10, D("1500")).stt == D("15.00")


def test_instrument_kind_rejects_unrecognisable_derivative_symbol() -> None:
    with pytest.raises(ValueError, match="neither FUT nor"):
        instrument_kind(InstrumentId(Exchange.NFO, "NIFTY"))


@pytest.mark.parametrize(
    ("kind", "product", "quantity", "price", "message"),
    [
        (FUT, Product.CNC, 65, D("24000"), "not valid for future"),
        (OPT, Product.CNC, 65, D("120"), "not valid for option"),
        (EQ, Product.NRML, 10, D("1500"), "not valid for equity"),
        (EQ, Product.CNC, 0, D("1500"), "quantity must be positive"),
        (EQ, Product.CNC, 10, D("-1"), "price must not be negative"),
    ],
)
def test_invalid_orders_raise(
    kind: InstrumentKind, product: Product, quantity: int, price: Decimal, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        order_charges("zerodha", kind, product, B, quantity, price)
