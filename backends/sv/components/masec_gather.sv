// masec_gather: data movement on one item, the dataflow.gather op.
//
//   out[i] = (idx[i] < N_IN) ? in[idx[i]] : PAD          i = 0 .. N_OUT-1
//
// = mase_compiler.numerics.intops.gather(item, index, pad), with the index N_IN
// (or anything larger) standing for the oracle's negative "pad" index.  A fixed
// index table covers reshape, transpose, head split/merge and im2col (with
// PAD = the input zero point: zero padding on the code grid).
//
// Input: N_IN codes of W bits per item, one per beat, in the item's flat
// (row-major) order.  Output: N_OUT codes of W bits per item, one per beat.
// IDX_FILE: $readmemh file of N_OUT words of IDX_W = $clog2(N_IN + 1) bits.
// PAD: the code emitted for a pad index, truncated to W bits (so -3 and 2^W - 3
// give the same code).
//
// Schedule: a ping-pong buffer of two items.  Item t+1 loads into one half while
// item t is emitted from the other; the output register reads the buffer (a
// synchronous read, so the halves can map to RAM).  Steady state:
// max(N_IN, N_OUT) cycles per item, no idle cycle between items; latency from
// an item's last input to its first output: 2 cycles.
module masec_gather #(
    parameter int W        = 8,
    parameter int N_IN     = 16,
    parameter int N_OUT    = 16,
    parameter int PAD      = 0,
    parameter     IDX_FILE = "idx.mem"
) (
    input  logic         clk,
    input  logic         rst_n,
    input  logic         in_valid,
    output logic         in_ready,
    input  logic [W-1:0] in_data,
    output logic         out_valid,
    input  logic         out_ready,
    output logic [W-1:0] out_data
);
    localparam int IDX_W  = $clog2(N_IN + 1);           // 0 .. N_IN, N_IN = pad
    localparam int IN_CW  = (N_IN > 1) ? $clog2(N_IN) : 1;
    localparam int OUT_CW = (N_OUT > 1) ? $clog2(N_OUT) : 1;
    localparam logic [IN_CW-1:0]  IN_LAST  = IN_CW'(N_IN - 1);
    localparam logic [OUT_CW-1:0] OUT_LAST = OUT_CW'(N_OUT - 1);
    localparam logic [IDX_W-1:0]  PAD_IDX  = IDX_W'(N_IN);
    localparam logic [W-1:0]      PAD_CODE = W'(PAD);

    initial if (N_IN < 1 || N_OUT < 1) $error("masec_gather: N_IN and N_OUT must be at least 1");

    logic [IDX_W-1:0] idxmem [N_OUT];
    initial $readmemh(IDX_FILE, idxmem);

    // ------------------------------------------------------------ ping-pong item buffer
    logic [W-1:0]      buffer [2][N_IN];
    logic [1:0]        full;                    // half holds a complete item
    logic              wr_sel, rd_sel;          // half being loaded / emitted
    logic [IN_CW-1:0]  in_cnt;
    logic [OUT_CW-1:0] out_cnt;
    logic              in_take, emit;
    logic [IDX_W-1:0]  idx;

    assign in_ready = !full[wr_sel];
    assign in_take  = in_valid && in_ready;
    // Emit one code whenever an item is waiting and the output register is free or being taken.
    assign emit     = full[rd_sel] && (!out_valid || out_ready);
    assign idx      = idxmem[out_cnt];

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            full      <= '0;
            wr_sel    <= 1'b0;
            rd_sel    <= 1'b0;
            in_cnt    <= '0;
            out_cnt   <= '0;
            out_valid <= 1'b0;
        end else begin
            // Loading completes only a half that is not full, emitting only empties a full one:
            // the two writes of `full` never hit the same half in one cycle.
            if (in_take) begin
                in_cnt <= (in_cnt == IN_LAST) ? '0 : in_cnt + 1'b1;
                if (in_cnt == IN_LAST) begin
                    full[wr_sel] <= 1'b1;
                    wr_sel       <= !wr_sel;
                end
            end
            if (emit) begin
                out_cnt <= (out_cnt == OUT_LAST) ? '0 : out_cnt + 1'b1;
                if (out_cnt == OUT_LAST) begin
                    full[rd_sel] <= 1'b0;
                    rd_sel       <= !rd_sel;
                end
            end
            if (emit) out_valid <= 1'b1;
            else if (out_ready) out_valid <= 1'b0;
        end
    end

    always_ff @(posedge clk) begin
        if (in_take) buffer[wr_sel][in_cnt] <= in_data;
        if (emit) out_data <= (idx >= PAD_IDX) ? PAD_CODE : buffer[rd_sel][idx[IN_CW-1:0]];
    end
endmodule
