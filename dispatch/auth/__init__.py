"""Auth context: registration, login, token rotation and role guards."""
