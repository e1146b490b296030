"""sinks stage."""
