// Testbench for the data-movement and two-operand components (tests/test_sv_dataflow.py):
// masec_gather, masec_matmul, masec_broadcast.  One build serves every test: each
// instance below streams <name>.*.hex files through its component into
// <name>.out*.hex with random stalls on every input and output (tb_source /
// tb_sink of tb_stream.sv); the Python test writes the inputs and parameter
// files, runs this once and compares each output with an oracle from
// mase_compiler.numerics.intops.
//
// The matmul wrappers can also gate the two operand streams (GATE = 1): the
// first inference's b (BATCH heads) arrives entirely before its a, and the
// second inference's a entirely before its b; later inferences stream with
// independent random stalls.  A component that cannot take a whole operand
// without the other deadlocks there, and the sinks come up short.

// ---------------------------------------------------------------- gather: in -> out
module tb_df_gather #(
    parameter     NAME  = "gather",
    parameter int W     = 8,
    parameter int N_IN  = 4,
    parameter int N_OUT = 4,
    parameter int PAD   = 0,
    parameter int STALL = 30
) (
    input  logic clk,
    input  logic rst_n,
    output logic done
);
    logic iv, ir, ov, orr;
    logic [W-1:0] id, od;
    tb_source #(.W(W), .FILE({NAME, ".in.hex"}), .STALL_PCT(STALL)) u_src (
        .clk, .rst_n, .valid(iv), .ready(ir), .data(id), .done);
    masec_gather #(.W(W), .N_IN(N_IN), .N_OUT(N_OUT), .PAD(PAD), .IDX_FILE({NAME, ".idx.mem"})) u_dut (
        .clk, .rst_n, .in_valid(iv), .in_ready(ir), .in_data(id),
        .out_valid(ov), .out_ready(orr), .out_data(od));
    tb_sink #(.W(W), .FILE({NAME, ".out.hex"}), .STALL_PCT(STALL)) u_snk (
        .clk, .rst_n, .valid(ov), .ready(orr), .data(od));
endmodule

// ---------------------------------------------------------------- matmul: a, b -> out
module tb_df_matmul #(
    parameter              NAME     = "matmul",
    parameter int          BATCH    = 2,
    parameter int          M        = 8,
    parameter int          K        = 8,
    parameter int          N        = 8,
    parameter int          A_W      = 8,
    parameter bit          A_SIGNED = 1'b1,
    parameter int          ZP_A     = 0,
    parameter int          B_W      = 8,
    parameter bit          B_SIGNED = 1'b1,
    parameter int          ZP_B     = 0,
    parameter int          LANES    = 1,
    parameter bit          REQUANT  = 1'b1,
    parameter logic [31:0] MULT     = 32'h4000_0000,
    parameter int          SHIFT    = 31,
    parameter int          ZP_OUT   = 0,
    parameter int          OUT_W    = 8,
    parameter int          LO       = -128,
    parameter int          HI       = 127,
    parameter              ROUNDING = "even",
    parameter int          STALL_A  = 30,
    parameter int          STALL_B  = 30,
    parameter int          STALL_O  = 30,
    parameter bit          GATE     = 1'b1
) (
    input  logic clk,
    input  logic rst_n,
    output logic done
);
    localparam int A_INF = BATCH * M * K;    // a words per inference
    localparam int B_INF = BATCH * K * N;

    logic sav, sar, sbv, sbr, av, ar, bv, br, ov, orr, done_a, done_b;
    logic [A_W-1:0] ad;
    logic [B_W-1:0] bd;
    logic [OUT_W-1:0] od;
    int a_cnt, b_cnt;                        // words the component took
    logic a_go, b_go;

    tb_source #(.W(A_W), .FILE({NAME, ".a.hex"}), .STALL_PCT(STALL_A)) u_src_a (
        .clk, .rst_n, .valid(sav), .ready(sar), .data(ad), .done(done_a));
    tb_source #(.W(B_W), .FILE({NAME, ".b.hex"}), .STALL_PCT(STALL_B)) u_src_b (
        .clk, .rst_n, .valid(sbv), .ready(sbr), .data(bd), .done(done_b));

    // The gates depend only on registered counts, so a word hidden by a closed gate
    // is never shown to the component and then withdrawn.
    assign a_go = !GATE || (a_cnt >= A_INF) || (b_cnt >= B_INF);
    assign b_go = !GATE || (b_cnt < B_INF) || (b_cnt >= 2 * B_INF) || (a_cnt >= 2 * A_INF);
    assign av   = sav && a_go;
    assign sar  = ar && a_go;
    assign bv   = sbv && b_go;
    assign sbr  = br && b_go;
    always_ff @(posedge clk) begin
        if (!rst_n) begin
            a_cnt <= 0;
            b_cnt <= 0;
        end else begin
            if (av && ar) a_cnt <= a_cnt + 1;
            if (bv && br) b_cnt <= b_cnt + 1;
        end
    end
    assign done = done_a && done_b;

    // Report the order the gates enforced, so the test can check the gating was not vacuous:
    // cycle of the last b word of inference 0 and of the first a word; last a of inference 1, first b.
    int cycle, b0_last, a0_first, a1_last, b1_first;
    always_ff @(posedge clk) begin
        if (!rst_n) cycle <= 0;
        else begin
            cycle <= cycle + 1;
            if (av && ar && a_cnt == 0)             a0_first <= cycle;
            if (bv && br && b_cnt == B_INF - 1)     b0_last  <= cycle;
            if (av && ar && a_cnt == 2 * A_INF - 1) a1_last  <= cycle;
            if (bv && br && b_cnt == B_INF)         b1_first <= cycle;
        end
    end
    final if (GATE) $display("tb_df_matmul %s: b0 last %0d, a0 first %0d, a1 last %0d, b1 first %0d",
                             NAME, b0_last, a0_first, a1_last, b1_first);

    masec_matmul #(
        .BATCH(BATCH), .M(M), .K(K), .N(N), .A_W(A_W), .A_SIGNED(A_SIGNED), .ZP_A(ZP_A),
        .B_W(B_W), .B_SIGNED(B_SIGNED), .ZP_B(ZP_B), .LANES(LANES), .REQUANT(REQUANT),
        .MULT(MULT), .SHIFT(SHIFT), .ZP_OUT(ZP_OUT), .OUT_W(OUT_W), .LO(LO), .HI(HI), .ROUNDING(ROUNDING)
    ) u_dut (
        .clk, .rst_n,
        .a_valid(av), .a_ready(ar), .a_data(ad),
        .b_valid(bv), .b_ready(br), .b_data(bd),
        .out_valid(ov), .out_ready(orr), .out_data(od));
    tb_sink #(.W(OUT_W), .FILE({NAME, ".out.hex"}), .STALL_PCT(STALL_O)) u_snk (
        .clk, .rst_n, .valid(ov), .ready(orr), .data(od));
endmodule

// ---------------------------------------------------------------- broadcast: in -> 3 outputs
module tb_df_broadcast3 #(
    parameter     NAME    = "broadcast",
    parameter int W       = 16,
    parameter int STALL   = 30,
    parameter int STALL_0 = 30,
    parameter int STALL_1 = 50,
    parameter int STALL_2 = 10
) (
    input  logic clk,
    input  logic rst_n,
    output logic done
);
    logic iv, ir;
    logic [W-1:0] id;
    logic [2:0] ov, orr;
    logic [3*W-1:0] od;
    tb_source #(.W(W), .FILE({NAME, ".in.hex"}), .STALL_PCT(STALL)) u_src (
        .clk, .rst_n, .valid(iv), .ready(ir), .data(id), .done);
    masec_broadcast #(.W(W), .N_OUT(3)) u_dut (
        .clk, .rst_n, .in_valid(iv), .in_ready(ir), .in_data(id),
        .out_valid(ov), .out_ready(orr), .out_data(od));
    // Independent sinks: each output is stalled by its own random ready.
    tb_sink #(.W(W), .FILE({NAME, ".out0.hex"}), .STALL_PCT(STALL_0)) u_snk0 (
        .clk, .rst_n, .valid(ov[0]), .ready(orr[0]), .data(od[0*W +: W]));
    tb_sink #(.W(W), .FILE({NAME, ".out1.hex"}), .STALL_PCT(STALL_1)) u_snk1 (
        .clk, .rst_n, .valid(ov[1]), .ready(orr[1]), .data(od[1*W +: W]));
    tb_sink #(.W(W), .FILE({NAME, ".out2.hex"}), .STALL_PCT(STALL_2)) u_snk2 (
        .clk, .rst_n, .valid(ov[2]), .ready(orr[2]), .data(od[2*W +: W]));
endmodule

// ---------------------------------------------------------------- the instances
// Parameters here must match CONFIGS in tests/test_sv_dataflow.py.
module tb_dataflow;
    logic clk = 1'b0;
    logic rst_n = 1'b0;
    always #5 clk = ~clk;

    localparam int NDONE = 14;
    logic [NDONE-1:0] done;

    initial begin
        repeat (3) @(posedge clk);
        @(negedge clk) rst_n = 1'b1;
        repeat (2) @(posedge clk);
        wait (&done);
        repeat (3000) @(posedge clk);   // drain the last heads through random back-pressure
        $display("tb_dataflow: done at %0t", $time);
        $finish;
    end

    initial begin
        #5_000_000;
        $display("tb_dataflow: timeout, done = %b", done);   // the sinks still write what they got
        $finish;
    end

    // gather: transpose 4x6, im2col of a 3x3 conv (pad 1) on a 2x4x4 CHW item, random with repeats and pads
    tb_df_gather #(.NAME("g_transpose"), .W(8), .N_IN(24), .N_OUT(24), .PAD(0))
        u_g_transpose (.clk, .rst_n, .done(done[0]));
    tb_df_gather #(.NAME("g_im2col"), .W(8), .N_IN(32), .N_OUT(288), .PAD(-3))
        u_g_im2col (.clk, .rst_n, .done(done[1]));
    tb_df_gather #(.NAME("g_random"), .W(12), .N_IN(16), .N_OUT(9), .PAD(4095 + 4096))
        u_g_random (.clk, .rst_n, .done(done[2]));
    tb_df_gather #(.NAME("g_fast"), .W(8), .N_IN(24), .N_OUT(24), .PAD(0), .STALL(0))
        u_g_fast (.clk, .rst_n, .done(done[3]));

    // matmul: BATCH = 2 heads
    tb_df_matmul #(.NAME("mm_s8_l4"), .M(8), .K(8), .N(8), .A_W(8), .A_SIGNED(1), .ZP_A(3), .B_W(8), .B_SIGNED(1),
                   .ZP_B(-5), .LANES(4), .REQUANT(1), .MULT(32'd3145728), .SHIFT(30), .ZP_OUT(-7),
                   .OUT_W(8), .LO(-128), .HI(127), .ROUNDING("even"))
        u_mm_s8_l4 (.clk, .rst_n, .done(done[4]));
    tb_df_matmul #(.NAME("mm_s8_l4_half_up"), .M(8), .K(8), .N(8), .A_W(8), .A_SIGNED(1), .ZP_A(3), .B_W(8),
                   .B_SIGNED(1), .ZP_B(-5), .LANES(4), .REQUANT(1), .MULT(32'd3145728), .SHIFT(30), .ZP_OUT(-7),
                   .OUT_W(8), .LO(-128), .HI(127), .ROUNDING("half_up"))
        u_mm_s8_l4_half_up (.clk, .rst_n, .done(done[5]));
    tb_df_matmul #(.NAME("mm_u8_l1"), .M(6), .K(8), .N(5), .A_W(8), .A_SIGNED(0), .ZP_A(128), .B_W(8),
                   .B_SIGNED(0), .ZP_B(100), .LANES(1), .REQUANT(1), .MULT(32'd1570730897), .SHIFT(39),
                   .ZP_OUT(128), .OUT_W(8), .LO(0), .HI(255), .ROUNDING("even"), .STALL_A(50), .STALL_B(20))
        u_mm_u8_l1 (.clk, .rst_n, .done(done[6]));
    tb_df_matmul #(.NAME("mm_raw_l4"), .M(5), .K(8), .N(7), .A_W(8), .A_SIGNED(1), .ZP_A(-2), .B_W(6),
                   .B_SIGNED(0), .ZP_B(31), .LANES(4), .REQUANT(0), .OUT_W(32), .LO(32'sh8000_0000),
                   .HI(32'sh7fff_ffff), .STALL_A(20), .STALL_B(50))
        u_mm_raw_l4 (.clk, .rst_n, .done(done[7]));
    tb_df_matmul #(.NAME("mm_clamp_l1"), .M(8), .K(4), .N(8), .A_W(4), .A_SIGNED(0), .ZP_A(8), .B_W(8),
                   .B_SIGNED(1), .ZP_B(0), .LANES(1), .REQUANT(0), .OUT_W(32), .LO(-1500), .HI(900))
        u_mm_clamp_l1 (.clk, .rst_n, .done(done[8]));
    tb_df_matmul #(.NAME("mm_fast"), .M(8), .K(8), .N(8), .A_W(8), .A_SIGNED(1), .ZP_A(3), .B_W(8), .B_SIGNED(1),
                   .ZP_B(-5), .LANES(4), .REQUANT(1), .MULT(32'd3145728), .SHIFT(30), .ZP_OUT(-7),
                   .OUT_W(8), .LO(-128), .HI(127), .STALL_A(0), .STALL_B(0), .STALL_O(0), .GATE(0))
        u_mm_fast (.clk, .rst_n, .done(done[9]));
    tb_df_matmul #(.NAME("mm_fast_l1"), .M(6), .K(8), .N(5), .A_W(8), .A_SIGNED(0), .ZP_A(128), .B_W(8),
                   .B_SIGNED(0), .ZP_B(100), .LANES(1), .REQUANT(1), .MULT(32'd1570730897), .SHIFT(39),
                   .ZP_OUT(128), .OUT_W(8), .LO(0), .HI(255), .STALL_A(0), .STALL_B(0), .STALL_O(0), .GATE(0))
        u_mm_fast_l1 (.clk, .rst_n, .done(done[10]));

    // broadcast: N_OUT = 3, independent random ready per output; and without stalls
    tb_df_broadcast3 #(.NAME("bc3"), .W(16)) u_bc3 (.clk, .rst_n, .done(done[11]));
    tb_df_broadcast3 #(.NAME("bc3_fast"), .W(16), .STALL(0), .STALL_0(0), .STALL_1(0), .STALL_2(0))
        u_bc3_fast (.clk, .rst_n, .done(done[12]));
    // one output never ready for long stretches: the others must not lose or repeat words
    tb_df_broadcast3 #(.NAME("bc3_skew"), .W(16), .STALL(0), .STALL_0(0), .STALL_1(90), .STALL_2(0))
        u_bc3_skew (.clk, .rst_n, .done(done[13]));
endmodule
