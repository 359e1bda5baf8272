// masec_add: sum of two integer streams on different grids, the dataflow.add op.
//
//   acc = (a - ZP_A) * MA[c] + (b - ZP_B) * MB[c]                  (exact, signed)
//   out = clamp(round_even(acc / 2^SHIFT) + ZP_OUT, LO, HI)        (one rounding for the sum)
//
// = mase_compiler.numerics.intops.add, bit for bit; MA/MB/SHIFT come from
// intops.add_multipliers (MA/2^SHIFT ~ s_a/s_out, MB/2^SHIFT ~ s_b/s_out).
// a is an A_W-bit code (two's complement when A_SIGNED = 1, unsigned otherwise),
// b likewise; either may be a 32-bit accumulator.  ZP_A must fit in A_W + 1 signed
// bits and ZP_B in B_W + 1 (any int at 32 bits).  Channel c = (element index) mod C.
// out_data holds the low OUT_W bits of the result.
//
// Parameter files ($readmemh, one hex word per line, channel 0 first):
//   MA_FILE, MB_FILE  C multipliers each, 32-bit SIGNED (two's complement words)
// SHIFT is a constant in 0..255.  ROUNDING = "even" (the contract); "away"/"half_up"
// exist for tests (masec_requant).
//
// Streams: a and b are joined in lockstep, one a and one b per output: an element
// is taken when both are valid and the pipeline has room (a_ready = b_valid &&
// room, b_ready = a_valid && room; the two inputs may stall independently).
// Two register stages, one element per cycle with no stalls (latency 2 cycles):
//   stage 1  the two products and their sum (registered acc)
//   stage 2  masec_requant with M = 1: the rounding shift, zero point, clamp
module masec_add #(
    parameter int A_W      = 8,
    parameter bit A_SIGNED = 1'b1,
    parameter int ZP_A     = 0,
    parameter int B_W      = 8,
    parameter bit B_SIGNED = 1'b1,
    parameter int ZP_B     = 0,
    parameter int C        = 1,
    parameter     MA_FILE  = "ma.mem",     // untyped strings: Yosys has no string parameters
    parameter     MB_FILE  = "mb.mem",
    parameter int SHIFT    = 0,
    parameter int ZP_OUT   = 0,
    parameter int OUT_W    = 8,
    parameter int LO       = -128,
    parameter int HI       = 127,
    parameter logic [8*7-1:0] ROUNDING = "even"   // "even", "away", "half_up" (as masec_requant)
) (
    input  logic             clk,
    input  logic             rst_n,
    input  logic             a_valid,
    output logic             a_ready,
    input  logic [A_W-1:0]   a_data,
    input  logic             b_valid,
    output logic             b_ready,
    input  logic [B_W-1:0]   b_data,
    output logic             out_valid,
    input  logic             out_ready,
    output logic [OUT_W-1:0] out_data
);
    localparam int XA_W  = A_W + 2;                       // a - ZP_A, signed, never overflows
    localparam int XB_W  = B_W + 2;
    localparam int PA_W  = XA_W + 32;                     // exact signed products
    localparam int PB_W  = XB_W + 32;
    localparam int ACC_W = ((PA_W > PB_W) ? PA_W : PB_W) + 1;
    localparam int CH_W  = (C > 1) ? $clog2(C) : 1;
    localparam logic [CH_W-1:0] C_LAST = CH_W'(C - 1);
    localparam logic signed [63:0] ZPA_LIM = 64'sd1 <<< A_W;
    localparam logic signed [63:0] ZPB_LIM = 64'sd1 <<< B_W;

    initial begin
        if (C < 1) $error("masec_add: C must be at least 1, not %0d", C);
        if (SHIFT < 0 || SHIFT > 255) $error("masec_add: SHIFT must be in 0..255, not %0d", SHIFT);
        if (64'(ZP_A) < -ZPA_LIM || 64'(ZP_A) >= ZPA_LIM)
            $error("masec_add: ZP_A must fit in A_W + 1 signed bits, not %0d", ZP_A);
        if (64'(ZP_B) < -ZPB_LIM || 64'(ZP_B) >= ZPB_LIM)
            $error("masec_add: ZP_B must fit in B_W + 1 signed bits, not %0d", ZP_B);
    end

    logic [31:0] mamem [C];
    logic [31:0] mbmem [C];
    initial begin
        $readmemh(MA_FILE, mamem);
        $readmemh(MB_FILE, mbmem);
    end

    // ------------------------------------------------------------ join and stage 1
    logic                    s1_valid, s1_ready, take, rq_ready;
    logic signed [ACC_W-1:0] s1_acc;
    logic [CH_W-1:0]         ch;                          // channel of the pair on the inputs

    assign s1_ready = !s1_valid || rq_ready;
    assign take     = a_valid && b_valid && s1_ready;
    assign a_ready  = b_valid && s1_ready;
    assign b_ready  = a_valid && s1_ready;

    logic signed [XA_W-1:0] xa;
    logic signed [XB_W-1:0] xb;
    logic signed [PA_W-1:0] pa;
    logic signed [PB_W-1:0] pb;
    always_comb begin
        if (A_SIGNED) xa = XA_W'($signed(a_data));
        else          xa = XA_W'({1'b0, a_data});
        if (B_SIGNED) xb = XB_W'($signed(b_data));
        else          xb = XB_W'({1'b0, b_data});
        xa = xa - XA_W'(ZP_A);
        xb = xb - XB_W'(ZP_B);
        pa = PA_W'(xa) * PA_W'($signed(mamem[ch]));
        pb = PB_W'(xb) * PB_W'($signed(mbmem[ch]));
    end

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            s1_valid <= 1'b0;
            ch       <= '0;
        end else begin
            if (s1_ready) s1_valid <= a_valid && b_valid;
            if (take) ch <= (ch == C_LAST) ? '0 : ch + 1'b1;
        end
    end

    always_ff @(posedge clk) begin
        if (take) s1_acc <= ACC_W'(pa) + ACC_W'(pb);
    end

    // ------------------------------------------------------------ stage 2: round, zero point, clamp
    masec_requant #(
        .LANES(1), .IN_W(ACC_W), .MULT_W(1), .SHIFT_W(8), .ZP_W(32), .OUT_W(OUT_W),
        .OUT_MIN(LO), .OUT_MAX(HI), .ROUNDING(ROUNDING)
    ) u_requant (
        .clk, .rst_n,
        .mult(1'b1), .shift(8'(SHIFT)), .zp(32'(ZP_OUT)),
        .in_valid(s1_valid), .in_ready(rq_ready), .in_data(s1_acc),
        .out_valid, .out_ready, .out_data
    );
endmodule
