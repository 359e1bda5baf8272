// masec_matmul: product of two activation streams, the dataflow.matmul op.
//
//   acc[h][m][n] = sum_{k<K} (a[h][m][k] - ZP_A) * (b[h][k][n] - ZP_B)      (exact)
//   REQUANT = 1:  out = clamp(round_even(acc * MULT / 2^SHIFT) + ZP_OUT, LO, HI)
//   REQUANT = 0:  out = clamp(acc, LO, HI)                                 (OUT_W = 32)
//
// = mase_compiler.numerics.intops.matmul followed by numerics.requant.requantize
// (or the clamp).  ROUNDING is masec_requant's: "even" (the definition), "away",
// or "half_up" (deliberately wrong, for tests).
//
// Streams, one code per beat, row-major:
//   a_*   BATCH x M x K codes of A_W bits (two's complement when A_SIGNED)
//   b_*   BATCH x K x N codes of B_W bits (two's complement when B_SIGNED)
//   out_* BATCH x M x N codes of OUT_W bits
// Heads (the BATCH axis) are independent, so the hardware computes one head
// after another; the streams simply carry BATCH heads per inference.
//
// Schedule: each operand has its own ping-pong buffer, so a and b each accept a
// whole head (and the next one) without waiting for the other operand.  b is
// stored transposed (column n at n*K) so that both operands of output (m, n)
// are read as LANES consecutive words.  A head is computed once both its a and
// b are complete: its M*N outputs in row-major order, each K/LANES beats of
// masec_dot (LANES multipliers), then masec_requant or the clamp.  Steady state
// per head: max(M*K, K*N, M*N*K/LANES) cycles (loads at one code per cycle,
// compute at one dot beat per cycle, no idle cycle between heads).  Latency:
// the first output of a head is offered K/LANES + 2 cycles after the last word
// of its second operand (dot beats, the dot's and the requantizer's registers).
module masec_matmul #(
    parameter int          BATCH    = 1,
    parameter int          M        = 8,
    parameter int          K        = 8,
    parameter int          N        = 8,
    parameter int          A_W      = 8,
    parameter bit          A_SIGNED = 1'b1,
    parameter int          ZP_A     = 0,
    parameter int          B_W      = 8,
    parameter bit          B_SIGNED = 1'b1,
    parameter int          ZP_B     = 0,
    parameter int          LANES    = 1,
    parameter bit          REQUANT  = 1'b1,
    parameter logic [31:0] MULT     = 32'h4000_0000,
    parameter int          SHIFT    = 31,
    parameter int          ZP_OUT   = 0,
    parameter int          OUT_W    = 8,
    parameter int          LO       = -128,
    parameter int          HI       = 127,
    parameter              ROUNDING = "even"
) (
    input  logic             clk,
    input  logic             rst_n,
    input  logic             a_valid,
    output logic             a_ready,
    input  logic [A_W-1:0]   a_data,
    input  logic             b_valid,
    output logic             b_ready,
    input  logic [B_W-1:0]   b_data,
    output logic             out_valid,
    input  logic             out_ready,
    output logic [OUT_W-1:0] out_data
);
    localparam int KB    = K / LANES;                            // dot beats per output
    localparam int DW    = ((A_W > B_W) ? A_W : B_W) + 2;        // code - zero point, signed
    localparam int ACC_W = 2 * DW + $clog2(K);
    localparam int CL_W  = ((ACC_W > 32) ? ACC_W : 32) + 1;      // clamp compare width
    localparam int MK_W  = (M * K > 1) ? $clog2(M * K) : 1;
    localparam int K_W   = (K > 1) ? $clog2(K) : 1;
    localparam int KB_W  = (KB > 1) ? $clog2(KB) : 1;
    localparam int M_W   = (M > 1) ? $clog2(M) : 1;
    localparam int N_W   = (N > 1) ? $clog2(N) : 1;
    localparam logic [MK_W-1:0] MK_LAST = MK_W'(M * K - 1);
    localparam logic [K_W-1:0]  K_LAST  = K_W'(K - 1);
    localparam logic [KB_W-1:0] KB_LAST = KB_W'(KB - 1);
    localparam logic [M_W-1:0]  M_LAST  = M_W'(M - 1);
    localparam logic [N_W-1:0]  N_LAST  = N_W'(N - 1);

    initial begin
        if (BATCH < 1 || M < 1 || K < 1 || N < 1) $error("masec_matmul: BATCH, M, K and N must be at least 1");
        if (LANES < 1 || K % LANES != 0) $error("masec_matmul: K must be a multiple of LANES");
        if (!REQUANT && OUT_W != 32) $error("masec_matmul: with REQUANT = 0, OUT_W must be 32");
    end

    // ------------------------------------------------------------ operand buffers (ping-pong each)
    logic [A_W-1:0]   abuf [2][M*K];            // a[m][k] at m*K + k
    logic [B_W-1:0]   bbuf [2][N*K];            // b[k][n] at n*K + k (transposed)
    logic [1:0]       a_full, b_full;
    logic             a_wr, b_wr, rd_sel;       // halves being loaded; the head being computed
    logic [MK_W-1:0]  a_cnt;
    logic [K_W-1:0]   b_k;
    logic [N_W-1:0]   b_n;
    logic             a_take, b_take;

    assign a_ready = !a_full[a_wr];
    assign b_ready = !b_full[b_wr];
    assign a_take  = a_valid && a_ready;
    assign b_take  = b_valid && b_ready;

    // ------------------------------------------------------------ dot product feed
    logic [KB_W-1:0]         k_cnt;
    logic [M_W-1:0]          m_cnt;
    logic [N_W-1:0]          n_cnt;
    logic                    dot_in_valid, dot_in_ready, dot_take;
    logic [LANES*DW-1:0]     dot_a, dot_b;
    logic                    dot_valid, dot_ready;
    logic signed [ACC_W-1:0] dot_out;

    assign dot_in_valid = a_full[rd_sel] && b_full[rd_sel];
    assign dot_take     = dot_in_valid && dot_in_ready;

    always_comb begin
        for (int l = 0; l < LANES; l++) begin
            logic [A_W-1:0]       ac;
            logic [B_W-1:0]       bc;
            logic signed [DW-1:0] av, bv;
            ac = abuf[rd_sel][int'(m_cnt) * K + int'(k_cnt) * LANES + l];
            bc = bbuf[rd_sel][int'(n_cnt) * K + int'(k_cnt) * LANES + l];
            av = A_SIGNED ? DW'($signed(ac)) : DW'({1'b0, ac});
            bv = B_SIGNED ? DW'($signed(bc)) : DW'({1'b0, bc});
            dot_a[l*DW +: DW] = av - DW'(ZP_A);
            dot_b[l*DW +: DW] = bv - DW'(ZP_B);
        end
    end

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            a_full <= '0;
            b_full <= '0;
            a_wr   <= 1'b0;
            b_wr   <= 1'b0;
            rd_sel <= 1'b0;
            a_cnt  <= '0;
            b_k    <= '0;
            b_n    <= '0;
            k_cnt  <= '0;
            m_cnt  <= '0;
            n_cnt  <= '0;
        end else begin
            // A load completes only a half that is not full, the compute frees only a full one:
            // the writes of a_full (b_full) below never hit the same half in one cycle.
            if (a_take) begin
                a_cnt <= (a_cnt == MK_LAST) ? '0 : a_cnt + 1'b1;
                if (a_cnt == MK_LAST) begin
                    a_full[a_wr] <= 1'b1;
                    a_wr         <= !a_wr;
                end
            end
            if (b_take) begin
                b_n <= (b_n == N_LAST) ? '0 : b_n + 1'b1;
                if (b_n == N_LAST) begin
                    b_k <= (b_k == K_LAST) ? '0 : b_k + 1'b1;
                    if (b_k == K_LAST) begin
                        b_full[b_wr] <= 1'b1;
                        b_wr         <= !b_wr;
                    end
                end
            end
            if (dot_take) begin
                k_cnt <= (k_cnt == KB_LAST) ? '0 : k_cnt + 1'b1;
                if (k_cnt == KB_LAST) begin
                    n_cnt <= (n_cnt == N_LAST) ? '0 : n_cnt + 1'b1;
                    if (n_cnt == N_LAST) begin
                        m_cnt <= (m_cnt == M_LAST) ? '0 : m_cnt + 1'b1;
                        if (m_cnt == M_LAST) begin
                            a_full[rd_sel] <= 1'b0;
                            b_full[rd_sel] <= 1'b0;
                            rd_sel         <= !rd_sel;
                        end
                    end
                end
            end
        end
    end

    always_ff @(posedge clk) begin
        if (a_take) abuf[a_wr][a_cnt] <= a_data;
        if (b_take) bbuf[b_wr][int'(b_n) * K + int'(b_k)] <= b_data;
    end

    masec_dot #(.N(LANES), .W(DW), .K(KB), .ACC_W(ACC_W)) u_dot (
        .clk, .rst_n,
        .in_valid(dot_in_valid), .in_ready(dot_in_ready), .in_a(dot_a), .in_b(dot_b),
        .out_valid(dot_valid), .out_ready(dot_ready), .out_data(dot_out)
    );

    // ------------------------------------------------------------ requantization or clamp
    if (REQUANT) begin : g_requant
        masec_requant #(
            .LANES(1), .IN_W(ACC_W), .MULT_W(32), .SHIFT_W(8), .ZP_W(32), .OUT_W(OUT_W),
            .OUT_MIN(LO), .OUT_MAX(HI), .ROUNDING(ROUNDING)
        ) u_requant (
            .clk, .rst_n,
            .mult(MULT), .shift(8'(SHIFT)), .zp(32'(ZP_OUT)),
            .in_valid(dot_valid), .in_ready(dot_ready), .in_data(dot_out),
            .out_valid, .out_ready, .out_data
        );
    end else begin : g_raw
        localparam logic signed [CL_W-1:0] LO_S = CL_W'(LO);
        localparam logic signed [CL_W-1:0] HI_S = CL_W'(HI);
        /* verilator lint_off UNUSEDSIGNAL */  // bits above OUT_W are the sign extension
        logic signed [CL_W-1:0] clamped;
        /* verilator lint_on UNUSEDSIGNAL */
        always_comb begin
            clamped = CL_W'(dot_out);
            if (clamped < LO_S)      clamped = LO_S;
            else if (clamped > HI_S) clamped = HI_S;
        end
        assign dot_ready = !out_valid || out_ready;
        always_ff @(posedge clk) begin
            if (!rst_n) out_valid <= 1'b0;
            else if (dot_ready) out_valid <= dot_valid;
        end
        always_ff @(posedge clk) begin
            if (dot_valid && dot_ready) out_data <= clamped[OUT_W-1:0];
        end
    end
endmodule
