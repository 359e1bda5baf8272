// masec_mx_elem: decode one OCP MX element code to an exact integer.
//
// Every value of an MX element format is an integer multiple of 2^-FE (the
// format's smallest step), so a code decodes exactly to
//
//   value = v * 2^FE = mant * 2^shift        (mant signed, shift >= 0)
//
//   ELEM        code bits  FE  mant                             shift           |value| max
//   "int8"          8       6  the code, two's complement       0               128       (-2.0)
//   "fp8_e4m3"      8       9  +-(E ? 8 + M : M)               max(E, 1) - 1   229376    (448)
//   "fp8_e5m2"      8      16  +-(E ? 4 + M : M)               max(E, 1) - 1   7 * 2^30  (57344)
//   "fp6_e2m3"      6       3  +-(E ? 8 + M : M)               max(E, 1) - 1   60        (7.5)
//   "fp6_e3m2"      6       4  +-(E ? 4 + M : M)               max(E, 1) - 1   448       (28)
//   "fp4_e2m1"      4       1  +-(E ? 2 + M : M)               max(E, 1) - 1   12        (6)
//
// A minifloat code is {sign, E (E_BITS), M (M_BITS)} with bias 2^(E_BITS-1) - 1, so
// FE = M_BITS + bias - 1 and a normal value (2^M_BITS + M) * 2^(E - bias - M_BITS)
// is (2^M_BITS + M) * 2^(E-1) steps; a subnormal (E = 0) is M steps; -0 gives 0.
// = mase_compiler.numerics.mx_hw.element_ints.  NaN and Inf codes (e4m3 S.1111.111,
// e5m2 E = 31) decode as the finite value of their bits: numerics' MXFormat.encode
// never writes them (a NaN block carries scale code 255 and zero elements).
//
// mant and shift feed a mantissa multiplier and a shifter (masec_mx_linear: an
// (M_BITS+2)-bit product shifted, instead of an IW x IW one); value = mant <<< shift
// is there for a plain integer multiplier.  Combinational.
module masec_mx_elem #(
    // "int8", "fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2" or "fp4_e2m1", packed into 8
    // bytes (Yosys has no string parameters)
    parameter logic [8*8-1:0] ELEM = "int8",
    // Derived from ELEM (leave them at their defaults): exponent and mantissa bits
    // (E_BITS = 0 for int8, whose M_BITS = 6 is its fraction bits), the code, mantissa,
    // shift and integer widths.
    parameter int E_BITS = (ELEM == "fp8_e4m3") ? 4 : (ELEM == "fp8_e5m2") ? 5 : (ELEM == "fp6_e3m2") ? 3
                         : (ELEM == "fp6_e2m3" || ELEM == "fp4_e2m1") ? 2 : 0,
    parameter int M_BITS = (ELEM == "fp8_e4m3" || ELEM == "fp6_e2m3") ? 3
                         : (ELEM == "fp8_e5m2" || ELEM == "fp6_e3m2") ? 2 : (ELEM == "fp4_e2m1") ? 1 : 6,
    parameter int EW     = (E_BITS == 0) ? 8 : 1 + E_BITS + M_BITS,
    parameter int MANT_W = (E_BITS == 0) ? 8 : M_BITS + 2,
    parameter int SH_W   = (E_BITS == 0) ? 1 : E_BITS,
    parameter int IW     = MANT_W + ((E_BITS == 0) ? 0 : (1 << E_BITS) - 2)
) (
    input  logic        [EW-1:0]     code,
    output logic signed [MANT_W-1:0] mant,
    output logic        [SH_W-1:0]   shift,
    output logic signed [IW-1:0]     value
);
    initial begin
        if (ELEM != "int8" && ELEM != "fp8_e4m3" && ELEM != "fp8_e5m2" && ELEM != "fp6_e2m3"
            && ELEM != "fp6_e3m2" && ELEM != "fp4_e2m1")
            $error("masec_mx_elem: ELEM must be int8, fp8_e4m3, fp8_e5m2, fp6_e2m3, fp6_e3m2 or fp4_e2m1, not %s",
                   ELEM);
    end

    if (E_BITS == 0) begin : g_int
        assign mant  = $signed(code);
        assign shift = '0;
    end else begin : g_float
        logic              sign;
        logic [E_BITS-1:0] e;
        logic [M_BITS-1:0] m;
        logic [M_BITS:0]   mag;                  // with the implicit bit of a normal value
        assign {sign, e, m} = code;
        assign mag   = {e != '0, m};
        assign mant  = sign ? -(MANT_W'(mag)) : MANT_W'(mag);
        assign shift = (e == '0) ? '0 : e - 1'b1;
    end

    assign value = IW'(mant) <<< shift;
endmodule
