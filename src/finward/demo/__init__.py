"""`finward demo`: a real sandbox bank and a real gateway, legitimate and hostile traffic
from a scenario file, and a report of what finward let through and what it refused."""
