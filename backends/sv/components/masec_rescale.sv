// masec_rescale: codes on one grid to codes on another, the dataflow.requant op.
//
//   x   = q - ZP_IN                                             (exact, IN_W + 2 bits)
//   out = clamp(round_even(x * M[c] / 2^S[c]) + ZP_OUT, LO, HI)  (exact rational rounding)
//
// = mase_compiler.numerics.intops.rescale (numerics.requant.requantize), bit for bit.
// q is an IN_W-bit code, two's complement when IN_SIGNED = 1, unsigned otherwise
// (int8/uint8 activations, or a 32-bit accumulator); ZP_IN must fit in IN_W + 1
// signed bits (any int when IN_W >= 32).  Channel c = (element index) mod C: the
// per-channel multipliers cycle over the last axis of a row-major tensor stream.
// out_data holds the low OUT_W bits of the result (the code on the grid LO..HI).
//
// Parameter files ($readmemh, one hex word per line, channel 0 first):
//   M_FILE  C multipliers, 32-bit unsigned
//   S_FILE  C shifts, 8-bit unsigned (any shift is exact: masec_requant)
// ROUNDING = "even" (the contract); "away"/"half_up" exist for tests (masec_requant).
//
// Streaming: one element per beat, one element per cycle with no stalls, one
// register stage (latency 1 cycle).  The channel counter advances with every
// accepted input; masec_requant samples M[c], S[c] with the beat it takes.
module masec_rescale #(
    parameter int IN_W      = 8,
    parameter bit IN_SIGNED = 1'b1,
    parameter int ZP_IN     = 0,
    parameter int C         = 1,
    parameter     M_FILE    = "m.mem",     // untyped strings: Yosys has no string parameters
    parameter     S_FILE    = "s.mem",
    parameter int ZP_OUT    = 0,
    parameter int OUT_W     = 8,
    parameter int LO        = -128,
    parameter int HI        = 127,
    parameter logic [8*7-1:0] ROUNDING = "even"   // "even", "away", "half_up" (as masec_requant)
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
    localparam int X_W  = IN_W + 2;                       // q - ZP_IN, signed, never overflows
    localparam int CH_W = (C > 1) ? $clog2(C) : 1;
    localparam logic [CH_W-1:0] C_LAST = CH_W'(C - 1);
    localparam logic signed [63:0] ZP_LIM = 64'sd1 <<< IN_W;   // |ZP_IN| bound for X_W bits

    initial begin
        if (C < 1) $error("masec_rescale: C must be at least 1, not %0d", C);
        if (64'(ZP_IN) < -ZP_LIM || 64'(ZP_IN) >= ZP_LIM)
            $error("masec_rescale: ZP_IN must fit in IN_W + 1 signed bits, not %0d", ZP_IN);
    end

    logic [31:0] mmem [C];
    logic [7:0]  smem [C];
    initial begin
        $readmemh(M_FILE, mmem);
        $readmemh(S_FILE, smem);
    end

    // Channel of the element on the input port.
    logic [CH_W-1:0] ch;
    always_ff @(posedge clk) begin
        if (!rst_n) ch <= '0;
        else if (in_valid && in_ready) ch <= (ch == C_LAST) ? '0 : ch + 1'b1;
    end

    logic signed [X_W-1:0] x;
    always_comb begin
        if (IN_SIGNED) x = X_W'($signed(in_data));
        else           x = X_W'({1'b0, in_data});
        x = x - X_W'(ZP_IN);
    end

    masec_requant #(
        .LANES(1), .IN_W(X_W), .MULT_W(32), .SHIFT_W(8), .ZP_W(32), .OUT_W(OUT_W),
        .OUT_MIN(LO), .OUT_MAX(HI), .ROUNDING(ROUNDING)
    ) u_requant (
        .clk, .rst_n,
        .mult(mmem[ch]), .shift(smem[ch]), .zp(32'(ZP_OUT)),
        .in_valid, .in_ready, .in_data(x),
        .out_valid, .out_ready, .out_data
    );
endmodule
