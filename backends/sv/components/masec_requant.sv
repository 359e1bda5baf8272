// masec_requant: integer requantization, the step every integer layer ends with.
//
//   y = clamp(round(x * MULT / 2^SHIFT) + ZP, OUT_MIN, OUT_MAX)
//
// computed exactly on integers: the product x*MULT is never truncated, the
// shift is an arithmetic (floor) shift, and the dropped bits decide the
// rounding of the exact rational value x*MULT/2^SHIFT:
//   ROUNDING = "even"    round half to even   (mase_compiler.numerics.rounding
//                                              round_to_int(mode="even"), the default)
//   ROUNDING = "away"    round half away from zero   (round_to_int(mode="away"))
//   ROUNDING = "half_up" round half towards +inf: NOT a numerics mode; it exists
//                        so tests can show that a wrong rounding is caught.
// OUT_MIN/OUT_MAX give the output grid (int8: -128..127, symmetric int8:
// -127..127, uint8: 0..255); out_data holds the low OUT_W bits of y (the code).
//
// Streaming: LANES values per beat, valid/ready, one register stage, full
// throughput.  mult, shift and zp are sampled with each accepted beat, so a
// per-channel scale can stream alongside the data.  MULT is unsigned, ZP signed;
// any SHIFT is exact (from IN_W + MULT_W + 1 up, |x*MULT| / 2^SHIFT < 1/2 rounds to 0).
module masec_requant #(
    parameter int    LANES   = 1,
    parameter int    IN_W    = 32,
    parameter int    MULT_W  = 16,
    parameter int    SHIFT_W = 6,
    parameter int    ZP_W    = 9,
    parameter int    OUT_W   = 8,
    parameter int    OUT_MIN = -128,
    parameter int    OUT_MAX = 127,
    // "even", "away" or "half_up", packed into 7 bytes: Yosys has no string parameters
    parameter logic [8*7-1:0] ROUNDING = "even"
) (
    input  logic                     clk,
    input  logic                     rst_n,
    input  logic [MULT_W-1:0]        mult,
    input  logic [SHIFT_W-1:0]       shift,
    input  logic signed [ZP_W-1:0]   zp,
    input  logic                     in_valid,
    output logic                     in_ready,
    input  logic [LANES*IN_W-1:0]    in_data,
    output logic                     out_valid,
    input  logic                     out_ready,
    output logic [LANES*OUT_W-1:0]   out_data
);
    localparam int P_W = IN_W + MULT_W + 1;      // exact signed product
    localparam int S_W = P_W + 2;                // product + rounding carry + zero point
    localparam logic signed [S_W-1:0] LO = S_W'(OUT_MIN);
    localparam logic signed [S_W-1:0] HI = S_W'(OUT_MAX);

    initial begin
        if (ROUNDING != "even" && ROUNDING != "away" && ROUNDING != "half_up")
            $error("masec_requant: ROUNDING must be even, away or half_up, not %s", ROUNDING);
        if (ZP_W > P_W) $error("masec_requant: ZP_W must be at most IN_W + MULT_W + 1");
    end

    logic [LANES*OUT_W-1:0] y;

    // Dropped-bit mask and the half-step, shared by all lanes.
    logic [P_W-1:0] mask, half;
    logic           tiny;                        // shift so large that the result is 0 + zp
    assign tiny = (32'(shift) >= 32'(P_W));
    assign mask = ~({P_W{1'b1}} << shift);
    assign half = (shift == '0) ? '0 : ({{(P_W-1){1'b0}}, 1'b1} << (shift - 1'b1));

    for (genvar l = 0; l < LANES; l++) begin : g_lane
        logic signed [P_W-1:0] prod, q;
        logic        [P_W-1:0] rem;
        logic                  tie_up, up;
        logic signed [S_W-1:0] s;

        always_comb begin
            prod = $signed(in_data[l*IN_W +: IN_W]) * $signed({1'b0, mult});
            q    = prod >>> shift;                  // floor(x*MULT / 2^SHIFT)
            rem  = prod & mask;                     // dropped bits, as a non-negative fraction
            if (ROUNDING == "even")      tie_up = q[0];                // odd floor: round up to even
            else if (ROUNDING == "away") tie_up = ~prod[P_W-1];        // positive: up; negative: stay
            else                         tie_up = 1'b1;                // half_up (deliberately wrong)
            up = (shift != '0) && ((rem > half) || ((rem == half) && tie_up));
            if (tiny) begin
                q  = '0;
                up = 1'b0;
            end
            s  = S_W'(q) + S_W'({1'b0, up}) + S_W'(zp);
            if (s < LO)      s = LO;
            else if (s > HI) s = HI;
            y[l*OUT_W +: OUT_W] = s[OUT_W-1:0];
        end
    end

    assign in_ready = !out_valid || out_ready;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            out_valid <= 1'b0;
        end else if (in_ready) begin
            out_valid <= in_valid;
        end
    end

    always_ff @(posedge clk) begin
        if (in_valid && in_ready) out_data <= y;
    end
endmodule
