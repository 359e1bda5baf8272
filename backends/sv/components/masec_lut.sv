// masec_lut: an elementwise function tabulated on every input code, the dataflow.lut op.
//
//   out = table[q - LO_IN]
//
// = mase_compiler.numerics.intops.lut, bit for bit, for codes LO_IN <= q < LO_IN + DEPTH
// (the table's domain).  q is an IN_W-bit code, two's complement when IN_SIGNED = 1,
// unsigned otherwise; LO_IN must fit in IN_W + 1 signed bits.  A code outside the
// table's domain reads the nearest end entry (index clamped to 0..DEPTH-1): defined
// hardware behaviour, where intops.lut has none.
//
// Parameter file ($readmemh, one hex word per line, entry 0 first):
//   LUT_FILE  DEPTH entries of OUT_W bits (e.g. GELU on the 256 int8 codes)
//
// Streaming: one element per beat, one element per cycle with no stalls, one
// register stage (latency 1 cycle): the table read is synchronous, so it maps to
// a block RAM where there is one.
module masec_lut #(
    parameter int IN_W      = 8,
    parameter bit IN_SIGNED = 1'b1,
    parameter int LO_IN     = -128,
    parameter int DEPTH     = 256,
    parameter int OUT_W     = 8,
    parameter     LUT_FILE  = "lut.mem"    // untyped string: Yosys has no string parameters
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
    localparam int AW  = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    localparam int D_W = ((IN_W > AW) ? IN_W : AW) + 2;    // q - LO_IN and DEPTH - 1, signed
    localparam logic signed [D_W-1:0] LAST = D_W'(DEPTH - 1);
    localparam logic signed [63:0] LO_LIM = 64'sd1 <<< IN_W;

    initial begin
        if (DEPTH < 1) $error("masec_lut: DEPTH must be at least 1, not %0d", DEPTH);
        if (64'(LO_IN) < -LO_LIM || 64'(LO_IN) >= LO_LIM)
            $error("masec_lut: LO_IN must fit in IN_W + 1 signed bits, not %0d", LO_IN);
    end

    logic [OUT_W-1:0] table_mem [DEPTH];
    initial $readmemh(LUT_FILE, table_mem);

    // Table index, clamped to the table.
    logic signed [D_W-1:0] d;
    logic [AW-1:0]         idx;
    always_comb begin
        if (IN_SIGNED) d = D_W'($signed(in_data));
        else           d = D_W'({1'b0, in_data});
        d = d - D_W'(LO_IN);
        if (d < 0)         idx = '0;
        else if (d > LAST) idx = AW'(LAST);
        else               idx = AW'(d);
    end

    assign in_ready = !out_valid || out_ready;

    always_ff @(posedge clk) begin
        if (!rst_n) out_valid <= 1'b0;
        else if (in_ready) out_valid <= in_valid;
    end

    always_ff @(posedge clk) begin
        if (in_valid && in_ready) out_data <= table_mem[idx];
    end
endmodule
