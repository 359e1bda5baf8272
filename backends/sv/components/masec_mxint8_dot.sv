// masec_mxint8_dot: exact dot product of two MXINT8 blocks (OCP MX v1.0).
//
// Each block is BLOCK elements k_i (two's complement W-bit, value k_i * 2^-(W-2))
// sharing one E8M0 scale code s (value 2^(s-127); code 255 is NaN).  The result
//
//   sum_i (2^(sa-127) ka_i 2^-(W-2)) * (2^(sb-127) kb_i 2^-(W-2))
//     = out_mant * 2^out_exp,   out_mant = sum_i ka_i kb_i,
//                               out_exp  = (sa - 127) + (sb - 127) - 2*(W-2)
//
// is exact: out_mant has ACC_W = 2*W + ceil(log2(BLOCK)) bits (no overflow, even
// for code -128) and out_exp is the shared-exponent add.  out_nan is set when
// either scale is NaN (then out_mant = out_exp = 0).  It equals the float64 dot
// product of the blocks decoded by mase_compiler.numerics.MXFormat("int8")
// (``parse("mxint8").decode``), which is exact for these ranges.
//
// Streaming: LANES elements of each operand per beat, BLOCK/LANES beats per
// block; the scales must be held for all beats of a block and are sampled with
// its last beat.  valid/ready; full throughput.
module masec_mxint8_dot #(
    parameter int BLOCK = 32,
    parameter int LANES = 32,
    parameter int W     = 8,
    parameter int ACC_W = 2 * W + $clog2(BLOCK),
    parameter int EXP_W = 10
) (
    input  logic                    clk,
    input  logic                    rst_n,
    input  logic                    in_valid,
    output logic                    in_ready,
    input  logic [LANES*W-1:0]      in_a,
    input  logic [LANES*W-1:0]      in_b,
    input  logic [7:0]              in_scale_a,
    input  logic [7:0]              in_scale_b,
    output logic                    out_valid,
    input  logic                    out_ready,
    output logic signed [ACC_W-1:0] out_mant,
    output logic signed [EXP_W-1:0] out_exp,
    output logic                    out_nan
);
    localparam int BEATS = BLOCK / LANES;
    localparam int CNT_W = (BEATS > 1) ? $clog2(BEATS) : 1;
    localparam logic [CNT_W-1:0] LAST = CNT_W'(BEATS - 1);
    localparam logic signed [EXP_W-1:0] EXP_OFFSET = EXP_W'(2 * 127 + 2 * (W - 2));

    initial begin
        if (BLOCK % LANES != 0) $error("masec_mxint8_dot: LANES must divide BLOCK");
        if (ACC_W < 2 * W + $clog2(BLOCK)) $error("masec_mxint8_dot: ACC_W must be at least 2*W + clog2(BLOCK)");
        if (EXP_W < 10) $error("masec_mxint8_dot: EXP_W must be at least 10 (exponents -266..242)");
    end

    logic signed [ACC_W-1:0] prods [LANES];
    logic signed [ACC_W-1:0] beat_sum, acc;
    logic        [CNT_W-1:0] cnt;
    logic                    last, nan;
    logic signed [EXP_W-1:0] exp_sum;

    for (genvar n = 0; n < LANES; n++) begin : g_lane
        masec_mac_lane #(.W(W), .OUT_W(ACC_W)) u_lane (
            .a(in_a[n*W +: W]), .b(in_b[n*W +: W]), .prod(prods[n])
        );
    end

    always_comb begin
        beat_sum = acc;
        for (int n = 0; n < LANES; n++) beat_sum = beat_sum + prods[n];
    end

    assign nan     = (in_scale_a == 8'hFF) || (in_scale_b == 8'hFF);
    assign exp_sum = EXP_W'(in_scale_a) + EXP_W'(in_scale_b) - EXP_OFFSET;
    assign last     = (cnt == LAST);
    assign in_ready = !last || !out_valid || out_ready;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            cnt       <= '0;
            acc       <= '0;
            out_valid <= 1'b0;
        end else begin
            if (out_valid && out_ready) out_valid <= 1'b0;
            if (in_valid && in_ready) begin
                if (last) begin
                    out_mant  <= nan ? '0 : beat_sum;
                    out_exp   <= nan ? '0 : exp_sum;
                    out_nan   <= nan;
                    out_valid <= 1'b1;
                    acc       <= '0;
                    cnt       <= '0;
                end else begin
                    acc <= beat_sum;
                    cnt <= cnt + 1'b1;
                end
            end
        end
    end
endmodule
