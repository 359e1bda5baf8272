"""masec passes (installed as mase_compiler.passes)."""
