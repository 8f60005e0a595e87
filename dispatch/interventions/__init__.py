"""The interventions context."""
