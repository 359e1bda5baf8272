// masec_requant_const: integer requantization by a fixed multiplier, shift and zero point.
//
//   y = clamp(round(x * MULT / 2^SHIFT) + ZP, OUT_MIN, OUT_MAX)
//
// The arithmetic of masec_requant (= mase_compiler.numerics.requant.requantize):
// the product x*MULT is exact, the dropped bits decide the rounding of the exact
// rational value, ROUNDING = "even" (half to even, the numerics' rounding),
// "away" (half away from zero) or "half_up" (NOT a numerics mode: for tests
// that must see a wrong rounding fail); any SHIFT >= 0 is exact.  With MULT,
// SHIFT and ZP as parameters instead of per-beat ports, synthesis turns the
// product into one adder per set bit of MULT and the shift into wiring (a
// 65-bit x by a 24-bit MULT: adders, where masec_requant needs a 65 x 33
// multiplier and a barrel shifter).  x is IN_W-bit two's complement; out_data
// holds the low OUT_W bits of y.
//
// Streaming: one value per beat, valid/ready, one register stage, full throughput.
module masec_requant_const #(
    parameter int          IN_W    = 32,
    parameter logic [31:0] MULT    = 32'd1,
    parameter int          SHIFT   = 0,
    parameter int          ZP      = 0,
    parameter int          OUT_W   = 8,
    parameter int          OUT_MIN = -128,
    parameter int          OUT_MAX = 127,
    // "even", "away" or "half_up", packed into 7 bytes: Yosys has no string parameters
    parameter logic [8*7-1:0] ROUNDING = "even"
) (
    input  logic             clk,
    input  logic             rst_n,
    input  logic             in_valid,
    output logic             in_ready,
    input  logic [IN_W-1:0]  in_data,
    output logic             out_valid,
    input  logic             out_ready,
    output logic [OUT_W-1:0] out_data
);
    localparam int P_W = IN_W + 33;                          // exact signed product
    localparam int S_W = P_W + 2;                            // + rounding carry + zero point
    localparam logic [P_W-1:0] MASK = (P_W'(1) << SHIFT) - 1'b1;                   // dropped bits
    localparam logic [P_W-1:0] HALF = (SHIFT == 0) ? '0 : P_W'(1) << (SHIFT - 1);
    localparam bit             TINY = (SHIFT >= P_W);        // |x*MULT| / 2^SHIFT < 1/2: rounds to 0
    localparam logic signed [S_W-1:0] LO = S_W'(OUT_MIN);
    localparam logic signed [S_W-1:0] HI = S_W'(OUT_MAX);

    initial begin
        if (ROUNDING != "even" && ROUNDING != "away" && ROUNDING != "half_up")
            $error("masec_requant_const: ROUNDING must be even, away or half_up, not %s", ROUNDING);
        if (SHIFT < 0) $error("masec_requant_const: SHIFT must be >= 0, not %0d", SHIFT);
    end

    logic signed [P_W-1:0] prod, q;
    logic        [P_W-1:0] rem;
    logic                  tie_up, up;
    logic signed [S_W-1:0] s;
    logic        [OUT_W-1:0] y;

    always_comb begin
        prod = P_W'($signed(in_data)) * P_W'($signed({1'b0, MULT}));
        q    = prod >>> SHIFT;                               // floor(x*MULT / 2^SHIFT)
        rem  = prod & MASK;
        if (ROUNDING == "even")      tie_up = q[0];          // odd floor: round up to even
        else if (ROUNDING == "away") tie_up = ~prod[P_W-1];  // positive: up; negative: stay
        else                         tie_up = 1'b1;          // half_up (deliberately wrong)
        up = (SHIFT != 0) && ((rem > HALF) || ((rem == HALF) && tie_up));
        if (TINY) begin
            q  = '0;
            up = 1'b0;
        end
        s = S_W'(q) + S_W'({1'b0, up}) + S_W'(ZP);
        if (s < LO)      s = LO;
        else if (s > HI) s = HI;
        y = s[OUT_W-1:0];
    end

    assign in_ready = !out_valid || out_ready;

    always_ff @(posedge clk) begin
        if (!rst_n) out_valid <= 1'b0;
        else if (in_ready) out_valid <= in_valid;
    end

    always_ff @(posedge clk) begin
        if (in_valid && in_ready) out_data <= y;
    end
endmodule
