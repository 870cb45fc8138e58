"""Built-in recipes (YAML files), addressable by name: ``leandl run digits-baseline``."""
