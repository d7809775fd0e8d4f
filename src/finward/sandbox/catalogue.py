"""Static reference data the sandbox bank is generated from.

Everything here is immutable (tuples, frozen dataclasses): the seeded generator picks
from it, so the same seed always gives the same bank. PSU ids and names are fixed on
purpose, so the demo and tests can say "psu-alice" whatever the seed; accounts,
IBANs, PANs and transactions are what the seed varies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from finward.sandbox.identifiers import BankCode


@dataclass(frozen=True, slots=True)
class BankBranch:
    """One national entity of the sandbox ASPSP (its BIC and BBAN routing codes)."""

    name: str
    bic: str
    code: BankCode
    city: str


@dataclass(frozen=True, slots=True)
class PsuProfile:
    """A fixed sandbox customer: who they are and where they bank."""

    psu_id: str
    name: str
    country: str
    foreign_currency: str  # currency of the optional second-currency account
    card_scheme: str
    employer: str


@dataclass(frozen=True, slots=True)
class Merchant:
    """A card acceptor: name and ISO 18245 merchant category code."""

    name: str
    mcc: str
    low: int  # typical ticket size in major units, to keep amounts plausible
    high: int


# The sandbox ASPSP has one entity per country, as pan-European banks do.
SANDBOX_BRANCHES: tuple[BankBranch, ...] = (
    BankBranch("Finward Bank Deutschland", "FWBKDEFFXXX", BankCode("DE", "50020030"), "Frankfurt"),
    BankBranch("Finward Banque France", "FWBKFRPPXXX", BankCode("FR", "30077", "00012"), "Paris"),
    BankBranch("Finward Bank Nederland", "FWBKNL2AXXX", BankCode("NL", "FWBK"), "Amsterdam"),
    BankBranch("Finward Banco Espana", "FWBKESMMXXX", BankCode("ES", "0239", "0087"), "Madrid"),
    BankBranch("Finward Banca Italia", "FWBKITMMXXX", BankCode("IT", "03268", "01600"), "Milano"),
    BankBranch("Finward Bank Belgie", "FWBKBEBBXXX", BankCode("BE", "539"), "Brussels"),
    BankBranch("Finward Bank UK", "FWBKGB2LXXX", BankCode("GB", "FWBK", "401276"), "London"),
    BankBranch("Finward Bank Schweiz", "FWBKCHZZXXX", BankCode("CH", "08390"), "Zurich"),
)

# Banks of counterparties (employers, landlords, friends): other institutions.
COUNTERPARTY_BANKS: tuple[BankCode, ...] = (
    BankCode("DE", "37040044"),
    BankCode("DE", "10010010"),
    BankCode("FR", "20041", "01005"),
    BankCode("NL", "RABO"),
    BankCode("ES", "2100", "0418"),
    BankCode("IT", "02008", "01664"),
    BankCode("BE", "001"),
    BankCode("AT", "20111"),
)

# Where the clients paying a second-currency account bank.
FOREIGN_COUNTERPARTY_BANKS: Mapping[str, BankCode] = MappingProxyType(
    {"GBP": BankCode("GB", "NWBK", "601613"), "CHF": BankCode("CH", "00762")}
)

PSU_PROFILES: tuple[PsuProfile, ...] = (
    PsuProfile("psu-alice", "Alice Schneider", "DE", "CHF", "visa", "Nordlicht Software GmbH"),
    PsuProfile("psu-bruno", "Bruno Lefevre", "FR", "GBP", "mastercard", "Atelier Lumiere SARL"),
    PsuProfile("psu-carla", "Carla de Vries", "NL", "GBP", "visa", "Polder Logistics B.V."),
    PsuProfile(
        "psu-diego", "Diego Fernandez Ruiz", "ES", "GBP", "mastercard", "Solar Iberico S.L."
    ),
    PsuProfile("psu-elena", "Elena Rossi", "IT", "CHF", "visa", "Officine Verdi S.p.A."),
    PsuProfile("psu-farid", "Farid El Amrani", "BE", "CHF", "mastercard", "Brabant Chemicals NV"),
)

LANDLORDS: tuple[str, ...] = (
    "Hausverwaltung Krause",
    "SCI Les Tilleuls",
    "Woonstede Beheer",
    "Inmobiliaria Sol y Mar",
    "Immobiliare Duomo",
    "Immo Schelde",
)

# (name, low, high): direct-debit creditors with a SEPA creditor id and a mandate.
UTILITIES: tuple[tuple[str, int, int], ...] = (
    ("Stadtwerke Nordhafen", 60, 140),
    ("Telco One Europe", 25, 60),
    ("Aqua Publica", 15, 45),
    ("Fibernet Home", 30, 55),
    ("Allsure Insurance", 20, 90),
)

SUBSCRIPTIONS: tuple[tuple[str, str], ...] = (
    ("Streamflix", "12.99"),
    ("Tunewave Premium", "10.99"),
    ("FitHub Gym", "39.90"),
    ("Cloudbox Storage", "2.99"),
    ("Daily Ledger News", "9.99"),
)

MERCHANTS: tuple[Merchant, ...] = (
    Merchant("Lidl", "5411", 8, 95),
    Merchant("Aldi", "5411", 6, 80),
    Merchant("Carrefour", "5411", 10, 140),
    Merchant("Albert Heijn", "5411", 5, 70),
    Merchant("Shell", "5541", 30, 95),
    Merchant("TotalEnergies", "5541", 30, 90),
    Merchant("IKEA", "5712", 15, 420),
    Merchant("Decathlon", "5941", 12, 160),
    Merchant("Zara", "5651", 20, 150),
    Merchant("Starbucks", "5814", 3, 15),
    Merchant("Trattoria da Mario", "5812", 18, 95),
    Merchant("Farmacia Centrale", "5912", 5, 60),
    Merchant("Uber", "4121", 8, 45),
    Merchant("Booking.com", "4722", 80, 640),
    Merchant("Amazon EU S.a.r.l.", "5999", 9, 210),
    Merchant("Apple.com/bill", "5818", 1, 15),
    Merchant("Deutsche Bahn", "4112", 19, 140),
    Merchant("Cinema Lumiere", "7832", 9, 30),
)

CITIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "DE": ("Berlin", "Munich", "Hamburg", "Cologne"),
        "FR": ("Paris", "Lyon", "Bordeaux", "Lille"),
        "NL": ("Amsterdam", "Utrecht", "Rotterdam", "Leiden"),
        "ES": ("Madrid", "Barcelona", "Valencia", "Sevilla"),
        "IT": ("Milano", "Roma", "Torino", "Bologna"),
        "BE": ("Brussels", "Antwerp", "Ghent", "Leuven"),
        "GB": ("London", "Manchester", "Bristol"),
        "CH": ("Zurich", "Geneva", "Basel"),
    }
)

FIRST_NAMES: tuple[str, ...] = (
    "Anna", "Lukas", "Chloe", "Mateo", "Sofia", "Jonas", "Ines", "Pieter", "Giulia",
    "Hugo", "Lea", "Marco", "Emma", "Noah", "Clara", "Tomas",
)  # fmt: skip

LAST_NAMES: tuple[str, ...] = (
    "Muller", "Dubois", "Jansen", "Garcia", "Bianchi", "Peeters", "Weber", "Moreau",
    "Bakker", "Lopez", "Romano", "Claes", "Fischer", "Laurent", "Visser", "Navarro",
)  # fmt: skip

P2P_REASONS: tuple[str, ...] = (
    "Dinner split",
    "Concert tickets",
    "Birthday present",
    "Holiday house share",
    "Taxi back home",
    "Groceries",
    "Thanks for lunch",
)
