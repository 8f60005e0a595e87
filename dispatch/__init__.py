"""The dispatch contexts: REST routes, services and repos, one folder per domain
(auth, artisans, admin, interventions, offers, payments, storage) and the dispatcher."""
