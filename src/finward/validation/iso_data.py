"""Reference tables for the format validators.

Sources and dates (update the date with the table):

- ``ISO_3166_ALPHA2``: ISO 3166-1 alpha-2, the 249 officially assigned codes (ISO 3166
  Maintenance Agency online browsing platform), as of 2025-01. ``XK`` (Kosovo, a
  user-assigned code) is not in it; ``BIC_COUNTRIES`` adds it because SWIFT issues BICs
  and the IBAN registry lists IBANs with it.
- ``ISO_4217_CURRENCIES``: ISO 4217 List One (current currency and funds codes, SIX
  Financial Information, the maintenance agency), as of 2025-01. Codes withdrawn before
  then (HRK, SLL, ZWL, VEF, MRO, STD, ...) are absent; ANG and CUC are kept, and XCG
  (introduced 2025-03 to replace ANG) is present, so a transition does not refuse either.
  Funds, precious-metal, testing (XTS) and no-currency (XXX) codes are in List One and
  accepted; a payment schema can narrow them with an ``enum``.
- ``IBAN_LENGTHS``: IBAN lengths by country, SWIFT IBAN Registry (ISO 13616), release of
  2024-12. All SEPA countries and the other registry countries are listed.
"""

from __future__ import annotations

ISO_3166_ALPHA2: frozenset[str] = frozenset(
    (
        "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX",
        "AZ", "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ",
        "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK",
        "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM",
        "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR",
        "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS",
        "GT", "GU", "GW", "GY", "HK", "HM", "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN",
        "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN",
        "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV",
        "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ",
        "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI",
        "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM",
        "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW", "SA", "SB", "SC",
        "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST", "SV",
        "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR",
        "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
        "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
    )
)  # fmt: skip

BIC_COUNTRIES: frozenset[str] = ISO_3166_ALPHA2 | {"XK"}

ISO_4217_CURRENCIES: frozenset[str] = frozenset(
    (
        "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
        "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
        "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP",
        "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP",
        "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS",
        "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW",
        "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD",
        "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN",
        "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR",
        "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS",
        "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD",
        "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND",
        "VUV", "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR", "XOF",
        "XPD", "XPF", "XPT", "XSU", "XTS", "XUA", "XXX", "YER", "ZAR", "ZMW", "ZWG",
    )
)  # fmt: skip

# Total IBAN length (country code and check digits included), SWIFT IBAN Registry.
IBAN_LENGTHS: dict[str, int] = {
    # SEPA (EU/EEA, CH, GB, AD, MC, SM, VA, AL, MD, ME, MK).
    "AD": 24, "AL": 28, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24,
    "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23,
    "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MT": 31, "NL": 18,
    "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "VA": 22,
    # Other registry countries.
    "AE": 23, "AZ": 28, "BA": 20, "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CR": 22,
    "DJ": 27, "DO": 28, "EG": 29, "FK": 18, "FO": 18, "GE": 22, "GL": 18, "GT": 28,
    "IL": 23, "IQ": 23, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LY": 25,
    "MN": 20, "MR": 27, "MU": 30, "NI": 28, "OM": 23, "PK": 24, "PS": 29, "QA": 29,
    "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20, "HN": 28, "YE": 30,
}  # fmt: skip
