"""The ops console's reads: an intervention's dispatch timeline and the live KPIs."""
