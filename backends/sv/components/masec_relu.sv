// masec_relu: elementwise ReLU on signed integer codes.
//
//   y = max(x, 0)       per lane, LANES lanes of signed W bits per beat
//
// On the integer grid of an IntFormat (zero point 0) this is exactly
// torch.relu of the dequantized value, re-encoded: relu commutes with a
// positive scale.  One register stage, valid/ready, full throughput.
module masec_relu #(
    parameter int LANES = 4,
    parameter int W     = 8
) (
    input  logic                 clk,
    input  logic                 rst_n,
    input  logic                 in_valid,
    output logic                 in_ready,
    input  logic [LANES*W-1:0]   in_data,
    output logic                 out_valid,
    input  logic                 out_ready,
    output logic [LANES*W-1:0]   out_data
);
    logic [LANES*W-1:0] y;

    for (genvar l = 0; l < LANES; l++) begin : g_lane
        assign y[l*W +: W] = in_data[l*W + W - 1] ? '0 : in_data[l*W +: W];
    end

    assign in_ready = !out_valid || out_ready;

    always_ff @(posedge clk) begin
        if (!rst_n) out_valid <= 1'b0;
        else if (in_ready) out_valid <= in_valid;
    end

    always_ff @(posedge clk) begin
        if (in_valid && in_ready) out_data <= y;
    end
endmodule
