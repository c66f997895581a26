"""The raw material of the synthetic store: names, places, phone styles, products, refund reasons.

Plain tuples, chosen from by `data.py` with seeded randomness. The pools deliberately contain
what trips real integrations: accents, CJK, Greek, Cyrillic, Arabic, an emoji, apostrophes,
a city with a non-ASCII name, empty states, postcodes with spaces.
"""

from __future__ import annotations

from typing import NamedTuple

FIRST_NAMES = (
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
    "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Wendy",
    "Aaron", "Beatrice", "Chloe", "Daniel", "Elena", "Felix", "Hannah", "Isaac", "Julia", "Kevin",
    "Laura", "Marcus", "Nora", "Oscar", "Priya", "Quentin", "Rosa", "Samuel", "Tara", "Uma",
)

LAST_NAMES = (
    "Smith", "Johnson", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas", "Roberts", "Walker",
    "Wright", "Robinson", "Thompson", "White", "Hughes", "Edwards", "Green", "Hall", "Wood", "Harris",
    "Clarke", "Jackson", "Turner", "Hill", "Moore", "Cooper", "Ward", "Morris", "King", "Baker",
    "Garcia", "Martinez", "Lopez", "Nguyen", "Patel", "Kim", "Schmidt", "Rossi", "Novak", "Silva",
)


class UnicodeName(NamedTuple):
    first_name: str
    last_name: str
    login_stem: str  # what WordPress would keep in user_login: ASCII


UNICODE_NAMES = (
    UnicodeName("Zoë", "Ångström-Łukasiewicz", "zoe.angstrom"),
    UnicodeName("山田", "太郎", "yamada.taro"),
    UnicodeName("José", "Núñez", "jose.nunez"),
    UnicodeName("Søren", "Kierkegård", "soren.kierkegard"),
    UnicodeName("Ελένη", "Παπαδοπούλου", "eleni.papadopoulou"),
    UnicodeName("Дмитрий", "Иванов", "dmitry.ivanov"),
    UnicodeName("François", "Lefèvre", "francois.lefevre"),
    UnicodeName("Ümit", "Çelik", "umit.celik"),
    UnicodeName("Nguyễn", "Thị Hoa", "nguyen.thi.hoa"),
    UnicodeName("محمد", "العلي", "mohammed.alali"),
    UnicodeName("김", "민준", "kim.minjun"),
    UnicodeName("Seán", "O'Connor", "sean.oconnor"),
    UnicodeName("Ana 🌻", "Silva", "ana.silva"),
)


class Place(NamedTuple):
    city: str
    state: str
    postcode: str
    country: str


PLACES = (
    Place("Springfield", "IL", "62701", "US"),
    Place("Austin", "TX", "73301", "US"),
    Place("Portland", "OR", "97201", "US"),
    Place("New York", "NY", "10001", "US"),
    Place("London", "", "SW1A 1AA", "GB"),
    Place("Manchester", "", "M1 1AE", "GB"),
    Place("Toronto", "ON", "M5H 2N2", "CA"),
    Place("Vancouver", "BC", "V6B 1A1", "CA"),
    Place("Berlin", "", "10115", "DE"),
    Place("München", "", "80331", "DE"),
    Place("Paris", "", "75001", "FR"),
    Place("Tokyo", "JP13", "100-0001", "JP"),
    Place("Sydney", "NSW", "2000", "AU"),
    Place("São Paulo", "SP", "01000-000", "BR"),
    Place("Amsterdam", "", "1011 AB", "NL"),
    Place("Cape Town", "WC", "8001", "ZA"),
    Place("Mumbai", "MH", "400001", "IN"),
)

STREETS = ("Main St", "High Street", "Oak Avenue", "Station Road", "Hauptstraße", "Rue de la Paix", "Elm Drive")
SECOND_LINES = ("Apt 4", "Suite 210", "Unit 7", "Floor 3", "c/o Reception")
EMAIL_DOMAINS = ("example.test", "example.com", "example.org", "example.net")
COMPANY_SUFFIXES = (" & Co", " Ltd", " GmbH", " LLC", " Trading", " Holdings")

# Meta a store's plugins leave on customers (keys without a leading underscore are visible in the API).
LOYALTY_TIERS = ("bronze", "silver", "gold", "platinum")
LANGUAGES = ("en_US", "en_GB", "de_DE", "fr_FR", "ja", "pt_BR")


class Product(NamedTuple):
    product_id: int
    name: str
    sku: str
    price_cents: int


# Everyday shop: most orders (the fixture store's products and friends).
RETAIL_PRODUCTS = (
    Product(10, "Blue Mug", "BLUE-MUG", 1250),
    Product(11, "Pour-over Kettle", "POUR-OVER-KETTLE", 4800),
    Product(12, "Paper Filters (100)", "PAPER-FILTERS-100", 599),
    Product(13, "Espresso Beans 1kg", "ESPRESSO-BEANS-1KG", 3175),
    Product(14, "Tote Bag", "TOTE-BAG", 1999),
    Product(15, "Sticker Pack", "STICKER-PACK", 349),
    Product(16, "Ceramic Dripper", "CERAMIC-DRIPPER", 2400),
    Product(17, "Gift Card", "GIFT-CARD", 5000),
    Product(18, "Decaf Beans 500g", "DECAF-BEANS-500G", 1450),
    Product(19, "Travel Tumbler", "TRAVEL-TUMBLER", 2795),
)

# Bigger baskets: enthusiasts and small offices.
PREMIUM_PRODUCTS = (
    Product(30, "Burr Grinder", "BURR-GRINDER", 18900),
    Product(31, "Home Espresso Machine", "HOME-ESPRESSO", 54900),
    Product(32, "Office Subscription (quarter)", "OFFICE-SUB-Q", 29700),
    Product(33, "Barista Course", "BARISTA-COURSE", 12500),
    Product(34, "Single Origin Sampler", "SINGLE-ORIGIN-SAMPLER", 8900),
)

# Trade accounts: cafés and resellers.
WHOLESALE_PRODUCTS = (
    Product(50, "Green Coffee Sack 60kg", "GREEN-SACK-60KG", 54000),
    Product(51, "Commercial Grinder", "COMMERCIAL-GRINDER", 124900),
    Product(52, "Espresso Machine Pro", "ESPRESSO-PRO", 189900),
    Product(53, "Café Starter Kit", "CAFE-STARTER-KIT", 45000),
    Product(54, "Wholesale Beans 20kg", "WHOLESALE-BEANS-20KG", 39000),
    Product(55, "Cup Carton (1000)", "CUP-CARTON-1000", 12000),
)

PAYMENT_METHODS = (
    ("bacs", "Direct bank transfer"),
    ("stripe", "Credit Card (Stripe)"),
    ("ppcp-gateway", "PayPal"),
    ("cod", "Cash on delivery"),
)

PARTIAL_REFUND_REASONS = ("Damaged item", "Customer changed mind", "Late delivery", "", "Price adjustment")
FULL_REFUND_REASON = "Order fully refunded."
