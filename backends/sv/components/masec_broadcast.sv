// masec_broadcast: fork one stream into N_OUT identical streams.
//
//   out_j = in        for every j < N_OUT (identity on each output: same words, same order)
//
// Output j is out_valid[j], out_ready[j], out_data[j*W +: W].  One word register
// holds the current input word and a pending bit per output; output j offers the
// word until it takes it (outputs may take it in different cycles), and the next
// input word enters once every output has taken the current one.
//
// Timing: out_valid/out_data come from registers (no path from in_valid/in_data
// to the outputs); in_ready is combinational in out_ready (a word can enter in
// the cycle the last pending output takes the previous one), as in
// masec_requant.  Full throughput: one word per cycle while every output is
// ready; latency one cycle.
module masec_broadcast #(
    parameter int W     = 8,
    parameter int N_OUT = 2
) (
    input  logic               clk,
    input  logic               rst_n,
    input  logic               in_valid,
    output logic               in_ready,
    input  logic [W-1:0]       in_data,
    output logic [N_OUT-1:0]   out_valid,
    input  logic [N_OUT-1:0]   out_ready,
    output logic [N_OUT*W-1:0] out_data
);
    initial if (N_OUT < 1) $error("masec_broadcast: N_OUT must be at least 1");

    logic [N_OUT-1:0] pending;      // outputs that have not taken the held word yet
    logic [W-1:0]     word;

    // Free when no output still waits for the held word after this cycle's handshakes.
    assign in_ready  = (pending & ~out_ready) == '0;
    assign out_valid = pending;
    assign out_data  = {N_OUT{word}};

    always_ff @(posedge clk) begin
        if (!rst_n) pending <= '0;
        else if (in_valid && in_ready) pending <= '1;
        else pending <= pending & ~out_ready;
    end

    always_ff @(posedge clk) begin
        if (in_valid && in_ready) word <= in_data;
    end
endmodule
