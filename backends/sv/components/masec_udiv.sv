// masec_udiv: sequential unsigned integer division, one quotient bit per cycle.
//
//   out_quot = floor(in_num / in_den),   out_rem = in_num - out_quot * in_den
//
// exactly, for in_den > 0 and a quotient that fits Q_W bits, i.e.
// (in_num >> Q_W) < in_den.  With Q_W = N_W that is any in_den > 0; a smaller
// Q_W is for callers that know a lower bound on the divisor (masec_softmax: the
// row sum is at least 2^15, so a 64-bit numerator needs 49 quotient bits) and
// saves N_W - Q_W cycles.  in_den = 0 gives an all-ones quotient.
//
// Restoring long division: the bits of in_num above Q_W preload the partial
// remainder (they are below in_den by the precondition), then each cycle shifts
// in the next dividend bit and subtracts in_den where it fits; the quotient bits
// shift into the register that held the dividend bits.  One subtractor of
// D_W + 1 bits, no multiplier.
//
// Streaming: valid/ready.  One division at a time: accepted in one cycle, Q_W
// cycles of iteration, then the result waits in out_quot/out_rem until taken;
// a new division is accepted in the cycle the result leaves, so back-to-back
// divisions take Q_W + 1 cycles each.
module masec_udiv #(
    parameter int N_W = 64,
    parameter int D_W = 32,
    parameter int Q_W = N_W
) (
    input  logic           clk,
    input  logic           rst_n,
    input  logic           in_valid,
    output logic           in_ready,
    input  logic [N_W-1:0] in_num,
    input  logic [D_W-1:0] in_den,
    output logic           out_valid,
    input  logic           out_ready,
    output logic [Q_W-1:0] out_quot,
    output logic [D_W-1:0] out_rem
);
    localparam int CNT_W = $clog2(Q_W + 1);

    initial begin
        if (Q_W < 1 || Q_W > N_W) $error("masec_udiv: Q_W must be in [1, N_W], not %0d", Q_W);
        if (D_W < 1) $error("masec_udiv: D_W must be at least 1");
    end

    logic [D_W-1:0]   rem, den;                 // partial remainder (< den), divisor
    logic [Q_W-1:0]   quo;                      // dividend bits still to come (MSB first), quotient bits below them
    logic [CNT_W-1:0] cnt;                      // iterations left
    logic             busy;                     // a division is running or its result waits
    logic [D_W:0]     part, diff;               // {rem, next dividend bit} and part - den
    logic             fits;

    assign part = {rem, quo[Q_W-1]};
    assign diff = part - {1'b0, den};
    assign fits = !diff[D_W];                   // part >= den: part < 2 den, so the sign bit decides

    assign out_valid = busy && (cnt == '0);
    assign in_ready  = !busy || (out_valid && out_ready);
    assign out_quot  = quo;
    assign out_rem   = rem;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            busy <= 1'b0;
            cnt  <= '0;
        end else if (in_valid && in_ready) begin
            busy <= 1'b1;
            cnt  <= CNT_W'(Q_W);
            rem  <= D_W'(in_num >> Q_W);        // < in_den by the precondition
            quo  <= in_num[Q_W-1:0];
            den  <= in_den;
        end else begin
            if (out_valid && out_ready) busy <= 1'b0;
            if (busy && cnt != '0) begin
                cnt <= cnt - 1'b1;
                rem <= fits ? diff[D_W-1:0] : part[D_W-1:0];
                quo <= Q_W'({quo, fits});
            end
        end
    end
endmodule
