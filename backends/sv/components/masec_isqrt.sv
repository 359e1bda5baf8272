// masec_isqrt: sequential exact integer square root, one root bit per cycle.
//
//   out_root = floor(sqrt(in_data)),   out_rem = in_data - out_root^2
//
// exactly, for any unsigned V_W-bit in_data (= mase_compiler.numerics.intops.isqrt).
// The root has R_W = ceil(V_W / 2) bits and out_rem <= 2 * out_root.
//
// Digit-by-digit binary method (the pencil-and-paper square root in base 2):
// each cycle brings down the next two bits of in_data into the partial
// remainder and subtracts 4 * root + 1 where it fits, which appends a 1 to the
// root (else a 0).  One subtractor of R_W + 3 bits, no multiplier.
//
// Streaming: valid/ready.  One root at a time: accepted in one cycle, R_W
// cycles of iteration, then the result waits until taken; a new value is
// accepted in the cycle the result leaves, so back-to-back roots take R_W + 1
// cycles each.
module masec_isqrt #(
    parameter int V_W = 32
) (
    input  logic           clk,
    input  logic           rst_n,
    input  logic           in_valid,
    output logic           in_ready,
    input  logic [V_W-1:0] in_data,
    output logic           out_valid,
    input  logic           out_ready,
    output logic [(V_W+1)/2-1:0] out_root,     // R_W = ceil(V_W / 2) bits
    output logic [(V_W+1)/2:0]   out_rem
);
    localparam int R_W   = (V_W + 1) / 2;
    localparam int P_W   = 2 * R_W;                 // in_data padded to an even width
    localparam int CNT_W = $clog2(R_W + 1);

    initial if (V_W < 1) $error("masec_isqrt: V_W must be at least 1");

    logic [P_W-1:0]   vsh;                          // bits still to bring down, top pair first
    logic [R_W-1:0]   root;
    logic [R_W:0]     rem;                          // <= 2 * root
    logic [CNT_W-1:0] cnt;                          // iterations left
    logic             busy;                         // a root is running or its result waits
    logic [R_W+3:0]   part, trial, diff;            // one spare bit: diff's sign
    logic             fits;

    assign part  = {1'b0, rem, vsh[P_W-1 -: 2]};
    assign trial = {2'b0, root, 2'b01};
    assign diff  = part - trial;
    assign fits  = !diff[R_W+3];

    assign out_valid = busy && (cnt == '0);
    assign in_ready  = !busy || (out_valid && out_ready);
    assign out_root  = root;
    assign out_rem   = rem;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            busy <= 1'b0;
            cnt  <= '0;
        end else if (in_valid && in_ready) begin
            busy <= 1'b1;
            cnt  <= CNT_W'(R_W);
            vsh  <= P_W'(in_data);
            root <= '0;
            rem  <= '0;
        end else begin
            if (out_valid && out_ready) busy <= 1'b0;
            if (busy && cnt != '0) begin
                cnt  <= cnt - 1'b1;
                vsh  <= vsh << 2;
                root <= R_W'({root, fits});
                rem  <= fits ? diff[R_W:0] : part[R_W:0];
            end
        end
    end
endmodule
