// One testbench for the whole component library, so that one Verilator build
// serves every test: each instance below streams <name>.in.hex through a
// component into <name>.out.hex, with random stalls on both sides.
// tests/test_sv_components.py writes the inputs, runs this, and compares each
// output with an oracle built from mase_compiler.numerics / exact integers.
module tb_components;
    logic clk = 1'b0;
    logic rst_n = 1'b0;
    always #5 clk = ~clk;

    localparam int NDONE = 20;
    logic [NDONE-1:0] done;

    initial begin
        repeat (3) @(posedge clk);
        @(negedge clk) rst_n = 1'b1;
        repeat (2) @(posedge clk);
        wait (&done);
        repeat (500) @(posedge clk);   // drain every pipeline through random back-pressure
        $display("tb_components: done at %0t", $time);
        $finish;
    end

    initial begin
        #100_000_000;
        $fatal(1, "tb_components: timeout");
    end

    // ---- requant: LANES=2, x int32, mult uint16, shift 6 bits, zp int9 ----
    localparam int RQ_IN = 9 + 6 + 16 + 2 * 32;
`define REQUANT(NAME, IDX, ROUND, LO, HI, STALL) \
    logic rq_``NAME``_iv, rq_``NAME``_ir, rq_``NAME``_ov, rq_``NAME``_or; \
    logic [RQ_IN-1:0] rq_``NAME``_id; \
    logic [15:0] rq_``NAME``_od; \
    tb_source #(.W(RQ_IN), .FILE(`"NAME.in.hex`"), .STALL_PCT(STALL)) u_src_``NAME`` ( \
        .clk, .rst_n, .valid(rq_``NAME``_iv), .ready(rq_``NAME``_ir), .data(rq_``NAME``_id), .done(done[IDX])); \
    masec_requant #(.LANES(2), .IN_W(32), .MULT_W(16), .SHIFT_W(6), .ZP_W(9), .OUT_W(8), \
                    .OUT_MIN(LO), .OUT_MAX(HI), .ROUNDING(ROUND)) u_``NAME`` ( \
        .clk, .rst_n, .mult(rq_``NAME``_id[79:64]), .shift(rq_``NAME``_id[85:80]), \
        .zp(rq_``NAME``_id[94:86]), .in_valid(rq_``NAME``_iv), .in_ready(rq_``NAME``_ir), \
        .in_data(rq_``NAME``_id[63:0]), .out_valid(rq_``NAME``_ov), .out_ready(rq_``NAME``_or), \
        .out_data(rq_``NAME``_od)); \
    tb_sink #(.W(16), .FILE(`"NAME.out.hex`"), .STALL_PCT(STALL)) u_snk_``NAME`` ( \
        .clk, .rst_n, .valid(rq_``NAME``_ov), .ready(rq_``NAME``_or), .data(rq_``NAME``_od));

    `REQUANT(requant_even, 0, "even", -128, 127, 30)
    `REQUANT(requant_away, 1, "away", -128, 127, 30)
    `REQUANT(requant_half_up, 2, "half_up", -128, 127, 30)
    `REQUANT(requant_u8, 3, "even", 0, 255, 30)

    // ---- dot products: {b, a} per beat ----
`define DOT(NAME, IDX, N_, W_, K_, STALL) \
    localparam int NAME``_ACC = 2 * W_ + $clog2(N_ * K_); \
    logic NAME``_iv, NAME``_ir, NAME``_ov, NAME``_or; \
    logic [2*N_*W_-1:0] NAME``_id; \
    logic [NAME``_ACC-1:0] NAME``_od; \
    tb_source #(.W(2*N_*W_), .FILE(`"NAME.in.hex`"), .STALL_PCT(STALL)) u_src_``NAME`` ( \
        .clk, .rst_n, .valid(NAME``_iv), .ready(NAME``_ir), .data(NAME``_id), .done(done[IDX])); \
    masec_dot #(.N(N_), .W(W_), .K(K_)) u_``NAME`` ( \
        .clk, .rst_n, .in_valid(NAME``_iv), .in_ready(NAME``_ir), \
        .in_a(NAME``_id[N_*W_-1:0]), .in_b(NAME``_id[2*N_*W_-1:N_*W_]), \
        .out_valid(NAME``_ov), .out_ready(NAME``_or), .out_data(NAME``_od)); \
    tb_sink #(.W(NAME``_ACC), .FILE(`"NAME.out.hex`"), .STALL_PCT(STALL)) u_snk_``NAME`` ( \
        .clk, .rst_n, .valid(NAME``_ov), .ready(NAME``_or), .data(NAME``_od));

    `DOT(dot_n4_w8_k3, 4, 4, 8, 3, 30)
    `DOT(dot_n8_w4_k1, 5, 8, 4, 1, 30)

    // ---- relu, fifo, width adapters: plain streams ----
`define STREAM(NAME, IDX, IW, OW, INST, STALL) \
    logic NAME``_iv, NAME``_ir, NAME``_ov, NAME``_or; \
    logic [IW-1:0] NAME``_id; \
    logic [OW-1:0] NAME``_od; \
    tb_source #(.W(IW), .FILE(`"NAME.in.hex`"), .STALL_PCT(STALL)) u_src_``NAME`` ( \
        .clk, .rst_n, .valid(NAME``_iv), .ready(NAME``_ir), .data(NAME``_id), .done(done[IDX])); \
    INST u_``NAME`` ( \
        .clk, .rst_n, .in_valid(NAME``_iv), .in_ready(NAME``_ir), .in_data(NAME``_id), \
        .out_valid(NAME``_ov), .out_ready(NAME``_or), .out_data(NAME``_od)); \
    tb_sink #(.W(OW), .FILE(`"NAME.out.hex`"), .STALL_PCT(STALL)) u_snk_``NAME`` ( \
        .clk, .rst_n, .valid(NAME``_ov), .ready(NAME``_or), .data(NAME``_od));

    `STREAM(relu, 6, 32, 32, masec_relu #(.LANES(4), .W(8)), 30)
    `STREAM(fifo, 7, 16, 16, masec_fifo #(.W(16), .DEPTH(3)), 30)
    `STREAM(wa_2to8, 8, 16, 64, masec_width_adapter #(.W(8), .N(2), .M(8)), 30)
    `STREAM(wa_8to2, 9, 64, 16, masec_width_adapter #(.W(8), .N(8), .M(2)), 30)
    `STREAM(wa_4to4, 10, 32, 32, masec_width_adapter #(.W(8), .N(4), .M(4)), 30)

    // ---- MXINT8 block dot: {scale_b, scale_a, b, a} per beat -> {nan, exp[9:0], mant[20:0]} ----
`define MXDOT(NAME, IDX, LANES_, STALL) \
    logic NAME``_iv, NAME``_ir, NAME``_ov, NAME``_or; \
    logic [2*LANES_*8+16-1:0] NAME``_id; \
    logic [31:0] NAME``_od; \
    tb_source #(.W(2*LANES_*8+16), .FILE(`"NAME.in.hex`"), .STALL_PCT(STALL)) u_src_``NAME`` ( \
        .clk, .rst_n, .valid(NAME``_iv), .ready(NAME``_ir), .data(NAME``_id), .done(done[IDX])); \
    masec_mxint8_dot #(.BLOCK(32), .LANES(LANES_)) u_``NAME`` ( \
        .clk, .rst_n, .in_valid(NAME``_iv), .in_ready(NAME``_ir), \
        .in_a(NAME``_id[LANES_*8-1:0]), .in_b(NAME``_id[2*LANES_*8-1:LANES_*8]), \
        .in_scale_a(NAME``_id[2*LANES_*8+7:2*LANES_*8]), .in_scale_b(NAME``_id[2*LANES_*8+15:2*LANES_*8+8]), \
        .out_valid(NAME``_ov), .out_ready(NAME``_or), \
        .out_mant(NAME``_od[20:0]), .out_exp(NAME``_od[30:21]), .out_nan(NAME``_od[31])); \
    tb_sink #(.W(32), .FILE(`"NAME.out.hex`"), .STALL_PCT(STALL)) u_snk_``NAME`` ( \
        .clk, .rst_n, .valid(NAME``_ov), .ready(NAME``_or), .data(NAME``_od));

    `MXDOT(mxdot_l8, 11, 8, 30)
    `MXDOT(mxdot_l32, 12, 32, 30)

    // ---- the same without stalls: the tests check full throughput ----
    `REQUANT(requant_fast, 13, "even", -128, 127, 0)
    `DOT(dot_fast, 14, 4, 8, 3, 0)
    `STREAM(relu_fast, 15, 32, 32, masec_relu #(.LANES(4), .W(8)), 0)
    `STREAM(fifo_fast, 16, 16, 16, masec_fifo #(.W(16), .DEPTH(3)), 0)
    `STREAM(wa_2to8_fast, 17, 16, 64, masec_width_adapter #(.W(8), .N(2), .M(8)), 0)
    `STREAM(wa_8to2_fast, 18, 64, 16, masec_width_adapter #(.W(8), .N(8), .M(2)), 0)
    `MXDOT(mxdot_fast, 19, 8, 0)
endmodule
