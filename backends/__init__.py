"""masec backends (installed as mase_compiler.backends)."""
