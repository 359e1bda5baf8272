// Testbench pieces for masec_mx_linear (tests/test_mx_hw.py).
//
// tb_mx_linear streams <NAME>.in.hex (one beat per line: LANES element codes, lane 0
// in the low bits, with the block's E8M0 scale code above them) through one
// masec_mx_linear, reading its weights from <NAME>.w.mem / .ws.mem / .m.mem / .s.mem,
// into <NAME>.out.hex, with random stalls on the input (STALL_IN percent of cycles)
// and the output (STALL_OUT) by tb_source / tb_sink of tb_stream.sv.  done rises once
// COUNT output codes were taken.
//
// The top module (tb_mx, one tb_mx_linear per configuration) is written by the test
// from its LAYERS table, so the parameters live in one place.
module tb_mx_linear #(
    parameter                 NAME      = "mx",
    parameter int             K         = 64,
    parameter int             N         = 4,
    parameter int             B         = 32,
    parameter int             LANES     = 4,
    parameter logic [8*8-1:0] ELEM_X    = "int8",
    parameter logic [8*8-1:0] ELEM_W    = "int8",
    parameter int             EW_X      = 8,
    parameter int             FRAC      = 0,
    parameter int             ACC_BITS  = 32,
    parameter int             OUT_W     = 8,
    parameter int             ZP_OUT    = 0,
    parameter int             LO        = -128,
    parameter int             HI        = 127,
    parameter bit             REQUANT   = 1'b1,
    parameter logic [8*5-1:0] ALIGN     = "even",
    parameter int             COUNT     = 1,
    parameter int             STALL_IN  = 30,
    parameter int             STALL_OUT = 30
) (
    input  logic clk,
    input  logic rst_n,
    output logic done
);
    localparam int IN_W = LANES * EW_X + 8;

    logic             iv, ir, ov, orr, src_done;
    logic [IN_W-1:0]  id;
    logic [OUT_W-1:0] od;
    int               taken;

    tb_source #(.W(IN_W), .FILE({NAME, ".in.hex"}), .STALL_PCT(STALL_IN)) u_src (
        .clk, .rst_n, .valid(iv), .ready(ir), .data(id), .done(src_done));
    masec_mx_linear #(
        .K(K), .N(N), .B(B), .LANES(LANES), .ELEM_X(ELEM_X), .ELEM_W(ELEM_W), .FRAC(FRAC),
        .ACC_BITS(ACC_BITS), .OUT_W(OUT_W), .ZP_OUT(ZP_OUT), .LO(LO), .HI(HI), .REQUANT(REQUANT),
        .ALIGN(ALIGN), .W_FILE({NAME, ".w.mem"}), .WS_FILE({NAME, ".ws.mem"}),
        .M_FILE({NAME, ".m.mem"}), .S_FILE({NAME, ".s.mem"})
    ) u_dut (
        .clk, .rst_n,
        .in_valid(iv), .in_ready(ir), .in_data(id[LANES*EW_X-1:0]), .in_scale(id[IN_W-1 -: 8]),
        .out_valid(ov), .out_ready(orr), .out_data(od));
    tb_sink #(.W(OUT_W), .FILE({NAME, ".out.hex"}), .STALL_PCT(STALL_OUT)) u_snk (
        .clk, .rst_n, .valid(ov), .ready(orr), .data(od));

    always_ff @(posedge clk) begin
        if (!rst_n) taken <= 0;
        else if (ov && orr) taken <= taken + 1;
    end
    assign done = src_done && (taken >= COUNT);
endmodule
