"""The cost model's fixed inputs: credentials, places, specialties, routes and targets."""

from __future__ import annotations

from pathlib import Path

from core.gateway_config import GatewayConfig

ROOT = Path(__file__).resolve().parents[2]


SECRET = "bench-cost-secret-" + "x" * 40


PASSWORD = "bench-cost-password-1"


BCRYPT_ROUNDS = 10


CENTER = (48.8566, 2.3522)


FLUSH_LINGER_S = GatewayConfig().flush_linger_s  # the server's flush cadence


JOB_SPECIALTY = "PLUMBER"  # request/job artisans; the fix-phase artisans have the others


FIX_SPECIALTIES = ("ELECTRICIAN", "LOCKSMITH", "HEATING", "GLAZIER", "APPLIANCE_REPAIR")


STATUSES = ("EN_ROUTE", "ARRIVED", "IN_PROGRESS", "COMPLETED")


ROUTES = (
    ("login", "POST /auth/login"),
    ("me", "GET /auth/me"),
    ("create", "POST /interventions"),
    ("get", "GET /interventions/{id}"),
    ("accept", "POST /offers/{id}/accept"),
    *((s, f"POST /interventions/{{id}}/status {s}") for s in STATUSES),
)


HOT_ROUTES = tuple(name for name, _label in ROUTES if name != "login")


TARGETS = {"redis_fix": 3.0, "server_fix": 3.0, "route": 2.5}
