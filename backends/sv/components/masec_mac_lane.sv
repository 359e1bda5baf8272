// masec_mac_lane: one multiply lane of a dot product.
//
//   prod = a * b      (signed W x W -> signed 2W, exact, sign-extended to OUT_W)
//
// Combinational; masec_dot instantiates N of them and sums their products.
// Matches exact Python integer multiplication of two IntFormat codes
// (mase_compiler.numerics.IntFormat.codes_to_grid of W-bit two's complement).
module masec_mac_lane #(
    parameter int W     = 8,
    parameter int OUT_W = 2 * W
) (
    input  logic signed [W-1:0]     a,
    input  logic signed [W-1:0]     b,
    output logic signed [OUT_W-1:0] prod
);
    initial if (OUT_W < 2 * W) $error("masec_mac_lane: OUT_W must be at least 2*W");
    assign prod = OUT_W'(a) * OUT_W'(b);
endmodule
