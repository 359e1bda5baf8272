// Testbench of the elementwise components (masec_rescale, masec_add, masec_lut), built
// once by tests/test_sv_elementwise.py: each instance streams <name>.in.hex (masec_add:
// <name>.a.hex and <name>.b.hex, from two sources that stall independently) through its
// component into <name>.out.hex, with random stalls on both sides.  Parameter memories
// are <name>.m.mem / .s.mem (rescale), .ma.mem / .mb.mem (add), .lut.mem (lut); the test
// writes them and the inputs, runs this, and compares each output with
// mase_compiler.numerics.intops.  Every instance prints its parameters ("cfg ...") so the
// test can check that its Python mirror of this file has not drifted.
module tb_elementwise;
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
        repeat (500) @(posedge clk);   // drain every pipeline through random back-pressure
        $display("tb_elementwise: done at %0t", $time);
        $finish;
    end

    initial begin
        #100_000_000;
        $fatal(1, "tb_elementwise: timeout");
    end

    // ---- masec_rescale: in IW bits -> out OW bits ----
`define EW_RESCALE(NAME, IDX, IW, ISG, ZPI, C_, ZPO, OW, LO_, HI_, ROUND, STALL) \
    logic NAME``_iv, NAME``_ir, NAME``_ov, NAME``_or; \
    logic [IW-1:0] NAME``_id; \
    logic [OW-1:0] NAME``_od; \
    initial $display("cfg %s kind=rescale IN_W=%0d IN_SIGNED=%0d ZP_IN=%0d C=%0d ZP_OUT=%0d OUT_W=%0d LO=%0d HI=%0d ROUNDING=%0s STALL=%0d", \
                     `"NAME`", IW, ISG, ZPI, C_, ZPO, OW, LO_, HI_, ROUND, STALL); \
    tb_source #(.W(IW), .FILE(`"NAME.in.hex`"), .STALL_PCT(STALL)) u_src_``NAME`` ( \
        .clk, .rst_n, .valid(NAME``_iv), .ready(NAME``_ir), .data(NAME``_id), .done(done[IDX])); \
    masec_rescale #(.IN_W(IW), .IN_SIGNED(ISG), .ZP_IN(ZPI), .C(C_), \
                    .M_FILE(`"NAME.m.mem`"), .S_FILE(`"NAME.s.mem`"), .ZP_OUT(ZPO), .OUT_W(OW), \
                    .LO(LO_), .HI(HI_), .ROUNDING(ROUND)) u_``NAME`` ( \
        .clk, .rst_n, .in_valid(NAME``_iv), .in_ready(NAME``_ir), .in_data(NAME``_id), \
        .out_valid(NAME``_ov), .out_ready(NAME``_or), .out_data(NAME``_od)); \
    tb_sink #(.W(OW), .FILE(`"NAME.out.hex`"), .STALL_PCT(STALL)) u_snk_``NAME`` ( \
        .clk, .rst_n, .valid(NAME``_ov), .ready(NAME``_or), .data(NAME``_od));

    `EW_RESCALE(rs_i8_c4, 0, 8, 1, -3, 4, 5, 8, -128, 127, "even", 30)
    `EW_RESCALE(rs_u8_c1, 1, 8, 0, 128, 1, 120, 8, 0, 255, "even", 40)
    `EW_RESCALE(rs_acc32_c4, 2, 32, 1, -7, 4, -10, 8, -127, 127, "even", 30)
    `EW_RESCALE(rs_half_up, 3, 8, 1, -3, 4, 5, 8, -128, 127, "half_up", 30)
    `EW_RESCALE(rs_fast, 4, 8, 1, -3, 4, 5, 8, -128, 127, "even", 0)

    // ---- masec_add: a (AW_ bits) + b (BW_ bits) -> out OW bits; a, b and the sink stall independently ----
`define EW_ADD(NAME, IDX, AW_, ASG, ZPA, BW_, BSG, ZPB, C_, SH, ZPO, OW, LO_, HI_, ROUND, STALL_A, STALL_B, STALL_O) \
    logic NAME``_av, NAME``_ar, NAME``_bv, NAME``_br, NAME``_ov, NAME``_or, NAME``_adone, NAME``_bdone; \
    logic [AW_-1:0] NAME``_ad; \
    logic [BW_-1:0] NAME``_bd; \
    logic [OW-1:0] NAME``_od; \
    assign done[IDX] = NAME``_adone && NAME``_bdone; \
    initial $display("cfg %s kind=add A_W=%0d A_SIGNED=%0d ZP_A=%0d B_W=%0d B_SIGNED=%0d ZP_B=%0d C=%0d SHIFT=%0d ZP_OUT=%0d OUT_W=%0d LO=%0d HI=%0d ROUNDING=%0s STALL_A=%0d STALL_B=%0d STALL=%0d", \
                     `"NAME`", AW_, ASG, ZPA, BW_, BSG, ZPB, C_, SH, ZPO, OW, LO_, HI_, ROUND, STALL_A, STALL_B, STALL_O); \
    tb_source #(.W(AW_), .FILE(`"NAME.a.hex`"), .STALL_PCT(STALL_A)) u_srca_``NAME`` ( \
        .clk, .rst_n, .valid(NAME``_av), .ready(NAME``_ar), .data(NAME``_ad), .done(NAME``_adone)); \
    tb_source #(.W(BW_), .FILE(`"NAME.b.hex`"), .STALL_PCT(STALL_B)) u_srcb_``NAME`` ( \
        .clk, .rst_n, .valid(NAME``_bv), .ready(NAME``_br), .data(NAME``_bd), .done(NAME``_bdone)); \
    masec_add #(.A_W(AW_), .A_SIGNED(ASG), .ZP_A(ZPA), .B_W(BW_), .B_SIGNED(BSG), .ZP_B(ZPB), .C(C_), \
                .MA_FILE(`"NAME.ma.mem`"), .MB_FILE(`"NAME.mb.mem`"), .SHIFT(SH), .ZP_OUT(ZPO), \
                .OUT_W(OW), .LO(LO_), .HI(HI_), .ROUNDING(ROUND)) u_``NAME`` ( \
        .clk, .rst_n, .a_valid(NAME``_av), .a_ready(NAME``_ar), .a_data(NAME``_ad), \
        .b_valid(NAME``_bv), .b_ready(NAME``_br), .b_data(NAME``_bd), \
        .out_valid(NAME``_ov), .out_ready(NAME``_or), .out_data(NAME``_od)); \
    tb_sink #(.W(OW), .FILE(`"NAME.out.hex`"), .STALL_PCT(STALL_O)) u_snk_``NAME`` ( \
        .clk, .rst_n, .valid(NAME``_ov), .ready(NAME``_or), .data(NAME``_od));

    // SHIFT is what intops.add_multipliers gives for the test's scale ratios (the test checks it).
    `EW_ADD(add_i8_c4, 5, 8, 1, -5, 8, 1, 3, 4, 22, -2, 8, -128, 127, "even", 30, 50, 30)
    `EW_ADD(add_u8_c1, 6, 8, 0, 128, 8, 0, 100, 1, 23, 128, 8, 0, 255, "even", 0, 70, 40)
    `EW_ADD(add_acc32_c4, 7, 32, 1, 0, 8, 0, 128, 4, 22, 7, 8, -128, 127, "even", 60, 10, 20)
    `EW_ADD(add_half_up, 8, 8, 1, -5, 8, 1, 3, 4, 22, -2, 8, -128, 127, "half_up", 30, 50, 30)
    `EW_ADD(add_fast, 9, 8, 1, -5, 8, 1, 3, 4, 22, -2, 8, -128, 127, "even", 0, 0, 0)

    // ---- masec_lut: in IW bits -> table entry of OW bits ----
`define EW_LUT(NAME, IDX, IW, ISG, LOI, DEPTH_, OW, STALL) \
    logic NAME``_iv, NAME``_ir, NAME``_ov, NAME``_or; \
    logic [IW-1:0] NAME``_id; \
    logic [OW-1:0] NAME``_od; \
    initial $display("cfg %s kind=lut IN_W=%0d IN_SIGNED=%0d LO_IN=%0d DEPTH=%0d OUT_W=%0d STALL=%0d", \
                     `"NAME`", IW, ISG, LOI, DEPTH_, OW, STALL); \
    tb_source #(.W(IW), .FILE(`"NAME.in.hex`"), .STALL_PCT(STALL)) u_src_``NAME`` ( \
        .clk, .rst_n, .valid(NAME``_iv), .ready(NAME``_ir), .data(NAME``_id), .done(done[IDX])); \
    masec_lut #(.IN_W(IW), .IN_SIGNED(ISG), .LO_IN(LOI), .DEPTH(DEPTH_), .OUT_W(OW), \
                .LUT_FILE(`"NAME.lut.mem`")) u_``NAME`` ( \
        .clk, .rst_n, .in_valid(NAME``_iv), .in_ready(NAME``_ir), .in_data(NAME``_id), \
        .out_valid(NAME``_ov), .out_ready(NAME``_or), .out_data(NAME``_od)); \
    tb_sink #(.W(OW), .FILE(`"NAME.out.hex`"), .STALL_PCT(STALL)) u_snk_``NAME`` ( \
        .clk, .rst_n, .valid(NAME``_ov), .ready(NAME``_or), .data(NAME``_od));

    `EW_LUT(lut_gelu_i8, 10, 8, 1, -128, 256, 8, 30)
    `EW_LUT(lut_sigmoid_u8, 11, 8, 0, 0, 256, 16, 40)
    `EW_LUT(lut_i10_part, 12, 10, 1, -300, 600, 12, 30)
    `EW_LUT(lut_fast, 13, 8, 1, -128, 256, 8, 0)

    // The macros stay local: other builds compile every tests/sv/*.sv together.
`undef EW_RESCALE
`undef EW_ADD
`undef EW_LUT
endmodule
