"""masec dialects (installed as mase_compiler.dialects)."""
