// masec_width_adapter: re-packs a stream of N lanes per beat into M lanes per beat.
//
// N, M powers of two; W bits per lane; lane i of a beat sits in bits [i*W +: W]
// and the element order of the flat stream is kept (earlier beats fill the low
// lanes).  M > N gathers M/N input beats into one output beat; M < N splits one
// input beat into N/M output beats; M = N is a wire.  Identity on the element
// stream: the oracle is the flattened input itself.  valid/ready, full
// throughput in both directions.
module masec_width_adapter #(
    parameter int W = 8,
    parameter int N = 2,
    parameter int M = 8
) (
    input  logic           clk,
    input  logic           rst_n,
    input  logic           in_valid,
    output logic           in_ready,
    input  logic [N*W-1:0] in_data,
    output logic           out_valid,
    input  logic           out_ready,
    output logic [M*W-1:0] out_data
);
    initial begin
        if ((N & (N - 1)) != 0 || (M & (M - 1)) != 0 || N < 1 || M < 1)
            $error("masec_width_adapter: N and M must be powers of two, not %0d and %0d", N, M);
    end

    if (M == N) begin : g_wire
        assign out_valid = in_valid;
        assign in_ready  = out_ready;
        assign out_data  = in_data;
        // clk and rst_n are unused in the pass-through configuration.
        logic unused;
        assign unused = clk ^ rst_n;
    end else if (M > N) begin : g_gather
        localparam int R     = M / N;
        localparam int IDX_W = $clog2(R);
        localparam logic [IDX_W-1:0] LAST = IDX_W'(R - 1);
        logic [IDX_W-1:0] idx;

        assign in_ready = !out_valid || out_ready;

        always_ff @(posedge clk) begin
            if (!rst_n) begin
                idx       <= '0;
                out_valid <= 1'b0;
            end else begin
                if (out_valid && out_ready) out_valid <= 1'b0;
                if (in_valid && in_ready) begin
                    idx <= (idx == LAST) ? '0 : idx + 1'b1;
                    if (idx == LAST) out_valid <= 1'b1;
                end
            end
        end

        always_ff @(posedge clk) begin
            if (in_valid && in_ready) out_data[idx*N*W +: N*W] <= in_data;
        end
    end else begin : g_split
        localparam int R     = N / M;
        localparam int IDX_W = $clog2(R);
        localparam logic [IDX_W-1:0] LAST = IDX_W'(R - 1);
        logic [N*W-1:0]   hold;
        logic [IDX_W-1:0] idx;

        assign out_data = hold[idx*M*W +: M*W];
        assign in_ready = !out_valid || (out_ready && idx == LAST);

        always_ff @(posedge clk) begin
            if (!rst_n) begin
                idx       <= '0;
                out_valid <= 1'b0;
            end else begin
                if (out_valid && out_ready) begin
                    idx <= (idx == LAST) ? '0 : idx + 1'b1;
                    if (idx == LAST) out_valid <= 1'b0;
                end
                if (in_valid && in_ready) out_valid <= 1'b1;
            end
        end

        always_ff @(posedge clk) begin
            if (in_valid && in_ready) hold <= in_data;
        end
    end
endmodule
