// masec_dot: streaming integer dot product.
//
//   out = sum_{k<K} sum_{n<N} a[k][n] * b[k][n]
//
// Each input beat carries N lanes of signed W-bit a and b (lane n in bits
// [n*W +: W]); K beats make one output.  The accumulator is
//   ACC_W = 2*W + ceil(log2(N*K))
// bits wide, enough for N*K products of the most negative W-bit values, so the
// sum never overflows: it equals the exact Python integer sum of the products
// of IntFormat codes (for K = 1 this is the 2*W + ceil(log2(N)) of one beat).
//
// Streaming: valid/ready; the accumulating beats are always accepted, the last
// beat of a group waits until the output register is free.
module masec_dot #(
    parameter int N     = 4,
    parameter int W     = 8,
    parameter int K     = 1,
    parameter int ACC_W = 2 * W + $clog2(N * K)
) (
    input  logic                    clk,
    input  logic                    rst_n,
    input  logic                    in_valid,
    output logic                    in_ready,
    input  logic [N*W-1:0]          in_a,
    input  logic [N*W-1:0]          in_b,
    output logic                    out_valid,
    input  logic                    out_ready,
    output logic signed [ACC_W-1:0] out_data
);
    localparam int CNT_W = (K > 1) ? $clog2(K) : 1;
    localparam logic [CNT_W-1:0] LAST = CNT_W'(K - 1);

    initial if (ACC_W < 2 * W + $clog2(N * K)) $error("masec_dot: ACC_W must be at least 2*W + clog2(N*K)");

    logic signed [ACC_W-1:0] prods [N];
    logic signed [ACC_W-1:0] beat_sum, acc;
    logic        [CNT_W-1:0] cnt;
    logic                    last;

    for (genvar n = 0; n < N; n++) begin : g_lane
        masec_mac_lane #(.W(W), .OUT_W(ACC_W)) u_lane (
            .a(in_a[n*W +: W]), .b(in_b[n*W +: W]), .prod(prods[n])
        );
    end

    always_comb begin
        beat_sum = acc;
        for (int n = 0; n < N; n++) beat_sum = beat_sum + prods[n];
    end

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
                    out_data  <= beat_sum;
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
