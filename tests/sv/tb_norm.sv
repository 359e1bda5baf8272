// Testbench for the row-wise components (tests/test_sv_norm.py): masec_softmax,
// masec_layernorm and their helpers masec_udiv, masec_isqrt and masec_requant_const.
//
// Each case streams <name>.in.hex through one component into <name>.out.hex
// with tb_source / tb_sink (tests/sv/tb_stream.sv: random stalls on both sides,
// a check that stalled outputs hold still).  Stall-free cases also write
// <name>.cyc, the cycle of every output beat, for the throughput tests.
// Parameter files: exp2_f<F>.mem (intops.exp2_table(F)), <name>.gamma.mem,
// <name>.beta.mem.  The test computes each case's integer parameters the way a
// compiler does and passes them as +define+ macros (`TBN_<CASE>_<PARAM>, with
// TBN_PARAMS saying they are all there); the defaults below only keep this file
// parseable without them (tests/test_sv_components.py reads every file in tests/sv/).
`ifndef TBN_PARAMS
`define TBN_SM_I8_N8_MULT 32'd1
`define TBN_SM_I8_N8_SHIFT 0
`define TBN_SM_I8_N8_NUM 64'd1
`define TBN_SM_U8_N4_MULT 32'd1
`define TBN_SM_U8_N4_SHIFT 0
`define TBN_SM_U8_N4_NUM 64'd1
`define TBN_SM_I16_N32_MULT 32'd1
`define TBN_SM_I16_N32_SHIFT 0
`define TBN_SM_I16_N32_NUM 64'd1
`define TBN_SM_I32_N8_MULT 32'd1
`define TBN_SM_I32_N8_SHIFT 0
`define TBN_SM_I32_N8_NUM 64'd1
`define TBN_LN_I8_D8_EPS 64'd1
`define TBN_LN_I8_D8_MULT 32'd1
`define TBN_LN_I8_D8_SHIFT 0
`define TBN_LN_I8_D32_EPS 64'd1
`define TBN_LN_I8_D32_MULT 32'd1
`define TBN_LN_I8_D32_SHIFT 0
`define TBN_LN_I16_D4_EPS 64'd1
`define TBN_LN_I16_D4_MULT 32'd1
`define TBN_LN_I16_D4_SHIFT 0
`define TBN_LN_U8_D16_EPS 64'd1
`define TBN_LN_U8_D16_MULT 32'd1
`define TBN_LN_U8_D16_SHIFT 0
`define TBN_LN_TIE_EPS 64'd1
`endif

module tb_norm;
    logic clk = 1'b0;
    logic rst_n = 1'b0;
    always #5 clk = ~clk;

    localparam int NDONE = 23;
    logic [NDONE-1:0] done;

    initial begin
        repeat (3) @(posedge clk);
        @(negedge clk) rst_n = 1'b1;
        repeat (2) @(posedge clk);
        wait (&done);
        repeat (3000) @(posedge clk);  // drain every row pipeline through random back-pressure
        $display("tb_norm: done at %0t", $time);
        $finish;
    end

    initial begin
        #100_000_000;
        $fatal(1, "tb_norm: timeout");
    end

    // ---- softmax: int8, int16, int32 and uint8 scores; ties; wrong rounding; cycles per row ----
    tb_norm_softmax #(.IN_W(8), .IN_SIGNED(1'b1), .N(8), .FRAC(6), .RB(32), .ZP_OUT(-128), .OUT_W(8),
                      .LO(-128), .HI(127), .SLOTS(2), .STALL(30), .MULT(`TBN_SM_I8_N8_MULT),
                      .SHIFT(`TBN_SM_I8_N8_SHIFT), .NUM(`TBN_SM_I8_N8_NUM), .NAME("sm_i8_n8"))
        u_sm_i8_n8 (.clk, .rst_n, .done(done[0]));
    tb_norm_softmax #(.IN_W(8), .IN_SIGNED(1'b0), .N(4), .FRAC(5), .RB(32), .ZP_OUT(0), .OUT_W(8),
                      .LO(0), .HI(255), .SLOTS(2), .STALL(30), .MULT(`TBN_SM_U8_N4_MULT),
                      .SHIFT(`TBN_SM_U8_N4_SHIFT), .NUM(`TBN_SM_U8_N4_NUM), .NAME("sm_u8_n4"))
        u_sm_u8_n4 (.clk, .rst_n, .done(done[1]));
    tb_norm_softmax #(.IN_W(16), .IN_SIGNED(1'b1), .N(32), .FRAC(8), .RB(32), .ZP_OUT(0), .OUT_W(16),
                      .LO(0), .HI(65535), .SLOTS(3), .STALL(30), .MULT(`TBN_SM_I16_N32_MULT),
                      .SHIFT(`TBN_SM_I16_N32_SHIFT), .NUM(`TBN_SM_I16_N32_NUM), .NAME("sm_i16_n32"))
        u_sm_i16_n32 (.clk, .rst_n, .done(done[2]));
    tb_norm_softmax #(.IN_W(32), .IN_SIGNED(1'b1), .N(8), .FRAC(6), .RB(32), .ZP_OUT(0), .OUT_W(8),
                      .LO(0), .HI(255), .SLOTS(2), .STALL(30), .MULT(`TBN_SM_I32_N8_MULT),
                      .SHIFT(`TBN_SM_I32_N8_SHIFT), .NUM(`TBN_SM_I32_N8_NUM), .NAME("sm_i32_n8"))
        u_sm_i32_n8 (.clk, .rst_n, .done(done[3]));
    // Small multipliers make exact ties in both roundings: t = round(5 d / 4), y = round(e R / 16).
    tb_norm_softmax #(.IN_W(8), .IN_SIGNED(1'b1), .N(4), .FRAC(4), .RB(4), .ZP_OUT(0), .OUT_W(16),
                      .LO(0), .HI(65535), .SLOTS(2), .STALL(30), .MULT(32'd5), .SHIFT(2),
                      .NUM(64'd1048576), .NAME("sm_ties"))
        u_sm_ties (.clk, .rst_n, .done(done[4]));
    tb_norm_softmax #(.IN_W(8), .IN_SIGNED(1'b1), .N(4), .FRAC(4), .RB(4), .ZP_OUT(0), .OUT_W(16),
                      .LO(0), .HI(65535), .SLOTS(2), .STALL(30), .MULT(32'd5), .SHIFT(2),
                      .NUM(64'd1048576), .ROUNDING("half_up"), .NAME("sm_ties_half_up"))
        u_sm_ties_half_up (.clk, .rst_n, .done(done[5]));
    tb_norm_softmax #(.IN_W(8), .IN_SIGNED(1'b1), .N(8), .FRAC(6), .RB(32), .ZP_OUT(-128), .OUT_W(8),
                      .LO(-128), .HI(127), .SLOTS(2), .STALL(0), .MULT(`TBN_SM_I8_N8_MULT),
                      .SHIFT(`TBN_SM_I8_N8_SHIFT), .NUM(`TBN_SM_I8_N8_NUM), .NAME("sm_fast_n8"))
        u_sm_fast_n8 (.clk, .rst_n, .done(done[6]));
    tb_norm_softmax #(.IN_W(16), .IN_SIGNED(1'b1), .N(64), .FRAC(8), .RB(32), .ZP_OUT(0), .OUT_W(16),
                      .LO(0), .HI(65535), .SLOTS(3), .STALL(0), .MULT(`TBN_SM_I16_N32_MULT),
                      .SHIFT(`TBN_SM_I16_N32_SHIFT), .NUM(`TBN_SM_I16_N32_NUM), .NAME("sm_fast_n64"))
        u_sm_fast_n64 (.clk, .rst_n, .done(done[7]));

    // ---- layer norm: int8, int16, uint8 with zero points; ties; wrong rounding; cycles per row ----
    tb_norm_layernorm #(.IN_W(8), .IN_SIGNED(1'b1), .ZP_IN(3), .D(8), .G_W(16), .ZP_OUT(-2), .OUT_W(8),
                        .LO(-128), .HI(127), .SLOTS(2), .STALL(30), .EPS(`TBN_LN_I8_D8_EPS),
                        .MULT(`TBN_LN_I8_D8_MULT), .SHIFT(`TBN_LN_I8_D8_SHIFT), .NAME("ln_i8_d8"))
        u_ln_i8_d8 (.clk, .rst_n, .done(done[8]));
    tb_norm_layernorm #(.IN_W(8), .IN_SIGNED(1'b1), .ZP_IN(-5), .D(32), .G_W(16), .ZP_OUT(0), .OUT_W(8),
                        .LO(-127), .HI(127), .SLOTS(3), .STALL(30), .EPS(`TBN_LN_I8_D32_EPS),
                        .MULT(`TBN_LN_I8_D32_MULT), .SHIFT(`TBN_LN_I8_D32_SHIFT), .NAME("ln_i8_d32"))
        u_ln_i8_d32 (.clk, .rst_n, .done(done[9]));
    tb_norm_layernorm #(.IN_W(16), .IN_SIGNED(1'b1), .ZP_IN(100), .D(4), .G_W(16), .ZP_OUT(5), .OUT_W(16),
                        .LO(-32768), .HI(32767), .SLOTS(2), .STALL(30), .EPS(`TBN_LN_I16_D4_EPS),
                        .MULT(`TBN_LN_I16_D4_MULT), .SHIFT(`TBN_LN_I16_D4_SHIFT), .NAME("ln_i16_d4"))
        u_ln_i16_d4 (.clk, .rst_n, .done(done[10]));
    tb_norm_layernorm #(.IN_W(8), .IN_SIGNED(1'b0), .ZP_IN(128), .D(16), .G_W(12), .ZP_OUT(128), .OUT_W(8),
                        .LO(0), .HI(255), .SLOTS(2), .STALL(30), .EPS(`TBN_LN_U8_D16_EPS),
                        .MULT(`TBN_LN_U8_D16_MULT), .SHIFT(`TBN_LN_U8_D16_SHIFT), .NAME("ln_u8_d16"))
        u_ln_u8_d16 (.clk, .rst_n, .done(done[11]));
    // gamma = 1, beta = 0, MULT / 2^SHIFT = 1/2: every odd n is an exact tie of the output rounding.
    tb_norm_layernorm #(.IN_W(8), .IN_SIGNED(1'b1), .ZP_IN(0), .D(8), .G_W(16), .ZP_OUT(0), .OUT_W(16),
                        .LO(-32768), .HI(32767), .SLOTS(2), .STALL(30), .EPS(`TBN_LN_TIE_EPS),
                        .MULT(32'd1), .SHIFT(1), .NAME("ln_tie"))
        u_ln_tie (.clk, .rst_n, .done(done[12]));
    tb_norm_layernorm #(.IN_W(8), .IN_SIGNED(1'b1), .ZP_IN(0), .D(8), .G_W(16), .ZP_OUT(0), .OUT_W(16),
                        .LO(-32768), .HI(32767), .SLOTS(2), .STALL(30), .EPS(`TBN_LN_TIE_EPS),
                        .MULT(32'd1), .SHIFT(1), .ROUNDING("half_up"), .NAME("ln_tie_half_up"))
        u_ln_tie_half_up (.clk, .rst_n, .done(done[13]));
    tb_norm_layernorm #(.IN_W(8), .IN_SIGNED(1'b1), .ZP_IN(3), .D(8), .G_W(16), .ZP_OUT(-2), .OUT_W(8),
                        .LO(-128), .HI(127), .SLOTS(2), .STALL(0), .EPS(`TBN_LN_I8_D8_EPS),
                        .MULT(`TBN_LN_I8_D8_MULT), .SHIFT(`TBN_LN_I8_D8_SHIFT), .NAME("ln_fast_d8"))
        u_ln_fast_d8 (.clk, .rst_n, .done(done[14]));
    tb_norm_layernorm #(.IN_W(8), .IN_SIGNED(1'b1), .ZP_IN(-5), .D(32), .G_W(16), .ZP_OUT(0), .OUT_W(8),
                        .LO(-127), .HI(127), .SLOTS(2), .STALL(0), .EPS(`TBN_LN_I8_D32_EPS),
                        .MULT(`TBN_LN_I8_D32_MULT), .SHIFT(`TBN_LN_I8_D32_SHIFT), .NAME("ln_fast_d32"))
        u_ln_fast_d32 (.clk, .rst_n, .done(done[15]));

    // ---- the sequential helpers on their own: {den, num} -> {rem, quot}, v -> {rem, root} ----
    tb_norm_udiv #(.N_W(64), .D_W(21), .Q_W(49), .STALL(30), .NAME("udiv_sm"))
        u_udiv_sm (.clk, .rst_n, .done(done[16]));
    tb_norm_udiv #(.N_W(41), .D_W(17), .Q_W(41), .STALL(30), .NAME("udiv_ln"))
        u_udiv_ln (.clk, .rst_n, .done(done[17]));
    tb_norm_udiv #(.N_W(64), .D_W(21), .Q_W(49), .STALL(0), .NAME("udiv_fast"))
        u_udiv_fast (.clk, .rst_n, .done(done[18]));
    tb_norm_isqrt #(.V_W(33), .STALL(30), .NAME("isqrt_33")) u_isqrt_33 (.clk, .rst_n, .done(done[19]));
    tb_norm_isqrt #(.V_W(64), .STALL(30), .NAME("isqrt_64")) u_isqrt_64 (.clk, .rst_n, .done(done[20]));
    tb_norm_isqrt #(.V_W(64), .STALL(0), .NAME("isqrt_fast")) u_isqrt_fast (.clk, .rst_n, .done(done[21]));
    // the fixed-scale requantizer's third rounding (softmax and layer norm use "even"): ties at x = 4 mod 8
    tb_norm_rqc #(.IN_W(32), .MULT(32'd3), .SHIFT(3), .ZP(-3), .ROUNDING("away"), .NAME("rqc_away"))
        u_rqc_away (.clk, .rst_n, .done(done[22]));
endmodule

// Writes the cycle of every transfer on a stream, one decimal per line.
module tb_norm_cycles #(
    parameter FILE = "x.cyc"
) (
    input logic clk,
    input logic rst_n,
    input logic valid,
    input logic ready
);
    int fd, cycle;
    initial begin
        fd = $fopen(FILE, "w");
        if (fd == 0) $fatal(1, "tb_norm_cycles: cannot open %s", FILE);
    end
    always_ff @(posedge clk) begin
        if (!rst_n) cycle <= 0;
        else begin
            cycle <= cycle + 1;
            if (valid && ready) $fwrite(fd, "%0d\n", cycle);
        end
    end
    final $fclose(fd);
endmodule

module tb_norm_softmax #(
    parameter int          IN_W      = 8,
    parameter bit          IN_SIGNED = 1'b1,
    parameter int          N         = 8,
    parameter logic [31:0] MULT      = 32'd1,
    parameter int          SHIFT     = 0,
    parameter int          FRAC      = 6,
    parameter logic [63:0] NUM       = 64'd1,
    parameter int          RB        = 32,
    parameter int          ZP_OUT    = 0,
    parameter int          OUT_W     = 8,
    parameter int          LO        = 0,
    parameter int          HI        = 255,
    parameter int          SLOTS     = 2,
    parameter logic [8*7-1:0] ROUNDING = "even",
    parameter int          STALL     = 30,
    parameter              NAME      = "sm"
) (
    input  logic clk,
    input  logic rst_n,
    output logic done
);
    logic iv, ir, ov, orr;
    logic [IN_W-1:0]  id;
    logic [OUT_W-1:0] od;
    tb_source #(.W(IN_W), .FILE({NAME, ".in.hex"}), .STALL_PCT(STALL)) u_src (
        .clk, .rst_n, .valid(iv), .ready(ir), .data(id), .done);
    masec_softmax #(
        .IN_W(IN_W), .IN_SIGNED(IN_SIGNED), .N(N), .MULT(MULT), .SHIFT(SHIFT), .FRAC(FRAC), .NUM(NUM),
        .RB(RB), .ZP_OUT(ZP_OUT), .OUT_W(OUT_W), .LO(LO), .HI(HI), .SLOTS(SLOTS), .ROUNDING(ROUNDING),
        .LUT_FILE(FRAC == 4 ? "exp2_f4.mem" : FRAC == 5 ? "exp2_f5.mem" : FRAC == 6 ? "exp2_f6.mem" : "exp2_f8.mem")
    ) u_dut (
        .clk, .rst_n, .in_valid(iv), .in_ready(ir), .in_data(id), .out_valid(ov), .out_ready(orr), .out_data(od));
    tb_sink #(.W(OUT_W), .FILE({NAME, ".out.hex"}), .STALL_PCT(STALL)) u_snk (
        .clk, .rst_n, .valid(ov), .ready(orr), .data(od));
    if (STALL == 0) begin : g_cycles
        tb_norm_cycles #(.FILE({NAME, ".cyc"})) u_cyc (.clk, .rst_n, .valid(ov), .ready(orr));
    end
endmodule

module tb_norm_layernorm #(
    parameter int          IN_W      = 8,
    parameter bit          IN_SIGNED = 1'b1,
    parameter int          ZP_IN     = 0,
    parameter int          D         = 8,
    parameter logic [63:0] EPS       = 64'd1,
    parameter int          G_W       = 16,
    parameter logic [31:0] MULT      = 32'd1,
    parameter int          SHIFT     = 0,
    parameter int          ZP_OUT    = 0,
    parameter int          OUT_W     = 8,
    parameter int          LO        = -128,
    parameter int          HI        = 127,
    parameter int          SLOTS     = 2,
    parameter logic [8*7-1:0] ROUNDING = "even",
    parameter int          STALL     = 30,
    parameter              NAME      = "ln"
) (
    input  logic clk,
    input  logic rst_n,
    output logic done
);
    logic iv, ir, ov, orr;
    logic [IN_W-1:0]  id;
    logic [OUT_W-1:0] od;
    tb_source #(.W(IN_W), .FILE({NAME, ".in.hex"}), .STALL_PCT(STALL)) u_src (
        .clk, .rst_n, .valid(iv), .ready(ir), .data(id), .done);
    masec_layernorm #(
        .IN_W(IN_W), .IN_SIGNED(IN_SIGNED), .ZP_IN(ZP_IN), .D(D), .EPS(EPS), .G_W(G_W), .MULT(MULT),
        .SHIFT(SHIFT), .ZP_OUT(ZP_OUT), .OUT_W(OUT_W), .LO(LO), .HI(HI), .SLOTS(SLOTS), .ROUNDING(ROUNDING),
        .G_FILE({NAME, ".gamma.mem"}), .B_FILE({NAME, ".beta.mem"})
    ) u_dut (
        .clk, .rst_n, .in_valid(iv), .in_ready(ir), .in_data(id), .out_valid(ov), .out_ready(orr), .out_data(od));
    tb_sink #(.W(OUT_W), .FILE({NAME, ".out.hex"}), .STALL_PCT(STALL)) u_snk (
        .clk, .rst_n, .valid(ov), .ready(orr), .data(od));
    if (STALL == 0) begin : g_cycles
        tb_norm_cycles #(.FILE({NAME, ".cyc"})) u_cyc (.clk, .rst_n, .valid(ov), .ready(orr));
    end
endmodule

module tb_norm_udiv #(
    parameter int N_W   = 64,
    parameter int D_W   = 32,
    parameter int Q_W   = 64,
    parameter int STALL = 30,
    parameter     NAME  = "udiv"
) (
    input  logic clk,
    input  logic rst_n,
    output logic done
);
    logic iv, ir, ov, orr;
    logic [D_W+N_W-1:0] id;
    logic [D_W+Q_W-1:0] od;
    tb_source #(.W(D_W + N_W), .FILE({NAME, ".in.hex"}), .STALL_PCT(STALL)) u_src (
        .clk, .rst_n, .valid(iv), .ready(ir), .data(id), .done);
    masec_udiv #(.N_W(N_W), .D_W(D_W), .Q_W(Q_W)) u_dut (
        .clk, .rst_n, .in_valid(iv), .in_ready(ir), .in_num(id[N_W-1:0]), .in_den(id[D_W+N_W-1:N_W]),
        .out_valid(ov), .out_ready(orr), .out_quot(od[Q_W-1:0]), .out_rem(od[D_W+Q_W-1:Q_W]));
    tb_sink #(.W(D_W + Q_W), .FILE({NAME, ".out.hex"}), .STALL_PCT(STALL)) u_snk (
        .clk, .rst_n, .valid(ov), .ready(orr), .data(od));
    if (STALL == 0) begin : g_cycles
        tb_norm_cycles #(.FILE({NAME, ".cyc"})) u_cyc (.clk, .rst_n, .valid(ov), .ready(orr));
    end
endmodule

module tb_norm_isqrt #(
    parameter int V_W   = 32,
    parameter int STALL = 30,
    parameter     NAME  = "isqrt"
) (
    input  logic clk,
    input  logic rst_n,
    output logic done
);
    localparam int R_W = (V_W + 1) / 2;
    logic iv, ir, ov, orr;
    logic [V_W-1:0]   id;
    logic [2*R_W:0]   od;
    tb_source #(.W(V_W), .FILE({NAME, ".in.hex"}), .STALL_PCT(STALL)) u_src (
        .clk, .rst_n, .valid(iv), .ready(ir), .data(id), .done);
    masec_isqrt #(.V_W(V_W)) u_dut (
        .clk, .rst_n, .in_valid(iv), .in_ready(ir), .in_data(id),
        .out_valid(ov), .out_ready(orr), .out_root(od[R_W-1:0]), .out_rem(od[2*R_W:R_W]));
    tb_sink #(.W(2 * R_W + 1), .FILE({NAME, ".out.hex"}), .STALL_PCT(STALL)) u_snk (
        .clk, .rst_n, .valid(ov), .ready(orr), .data(od));
    if (STALL == 0) begin : g_cycles
        tb_norm_cycles #(.FILE({NAME, ".cyc"})) u_cyc (.clk, .rst_n, .valid(ov), .ready(orr));
    end
endmodule

module tb_norm_rqc #(
    parameter int          IN_W  = 32,
    parameter logic [31:0] MULT  = 32'd1,
    parameter int          SHIFT = 0,
    parameter int          ZP    = 0,
    parameter logic [8*7-1:0] ROUNDING = "even",
    parameter              NAME  = "rqc"
) (
    input  logic clk,
    input  logic rst_n,
    output logic done
);
    logic iv, ir, ov, orr;
    logic [IN_W-1:0] id;
    logic [7:0]      od;
    tb_source #(.W(IN_W), .FILE({NAME, ".in.hex"}), .STALL_PCT(30)) u_src (
        .clk, .rst_n, .valid(iv), .ready(ir), .data(id), .done);
    masec_requant_const #(.IN_W(IN_W), .MULT(MULT), .SHIFT(SHIFT), .ZP(ZP), .OUT_W(8), .OUT_MIN(-128),
                          .OUT_MAX(127), .ROUNDING(ROUNDING)) u_dut (
        .clk, .rst_n, .in_valid(iv), .in_ready(ir), .in_data(id), .out_valid(ov), .out_ready(orr), .out_data(od));
    tb_sink #(.W(8), .FILE({NAME, ".out.hex"}), .STALL_PCT(30)) u_snk (
        .clk, .rst_n, .valid(ov), .ready(orr), .data(od));
endmodule
