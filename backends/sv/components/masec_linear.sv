// masec_linear: streaming integer linear layer, the dataflow.linear op.
//
//   acc[n] = sum_{k<K} (x[k] - ZP_IN) * w[k][n] + bias[n]                 (exact)
//   REQUANT = 1:  y[n] = clamp(round_even(acc[n] * M[n] / 2^S[n]) + ZP_OUT, LO, HI)
//   REQUANT = 0:  y[n] = clamp(acc[n], LO, HI)
//
// = mase_compiler.interpreter._dataflow linear (numerics.requant.requantize).
//
// Input: K codes of IN_W bits per vector, LANES per beat (lane l in bits
// [l*IN_W +: IN_W]; IN_SIGNED says whether the codes are two's complement).
// Output: N codes of OUT_W bits, one per beat, channel 0 first.
// Parameters from $readmemh files, one hex word per line:
//   W_FILE  N*K weights of W_W bits, index n*K + k (output-channel major)
//   B_FILE  N biases of 32 bits (HAS_BIAS = 1)
//   M_FILE  N multipliers of 32 bits (unsigned), S_FILE N shifts of 8 bits (REQUANT = 1)
//
// Schedule: the K inputs are collected into one of two buffers (K/LANES beats)
// while the vector in the other buffer is computed: its N channels one after
// another by masec_dot (LANES multipliers, K/LANES beats per channel), then the
// bias is added and masec_requant rounds.  Steady state: max(K/LANES,
// N*K/LANES) cycles per vector.
module masec_linear #(
    parameter int    K         = 16,
    parameter int    N         = 8,
    parameter int    LANES     = 4,
    parameter int    IN_W      = 8,
    parameter bit    IN_SIGNED = 1'b1,
    parameter int    W_W       = 8,
    parameter int    OUT_W     = 8,
    parameter int    ZP_IN     = 0,
    parameter int    ZP_OUT    = 0,
    parameter int    LO        = -128,
    parameter int    HI        = 127,
    parameter bit    REQUANT   = 1'b1,
    parameter bit    HAS_BIAS  = 1'b1,
    // Strings without the string type, which Yosys lacks: ROUNDING packed into 7 bytes
    // ("even", "away", "half_up"), the file names untyped (as wide as the value given).
    parameter logic [8*7-1:0] ROUNDING = "even",
    parameter        W_FILE    = "w.mem",
    parameter        B_FILE    = "b.mem",
    parameter        M_FILE    = "m.mem",
    parameter        S_FILE    = "s.mem"
) (
    input  logic                  clk,
    input  logic                  rst_n,
    input  logic                  in_valid,
    output logic                  in_ready,
    input  logic [LANES*IN_W-1:0] in_data,
    output logic                  out_valid,
    input  logic                  out_ready,
    output logic [OUT_W-1:0]      out_data
);
    localparam int KB    = K / LANES;                        // beats per vector
    localparam int DW    = ((IN_W + 2) > W_W) ? (IN_W + 2) : W_W;   // x - ZP_IN and w, signed
    localparam int ACC_W = 2 * DW + $clog2(LANES * KB);
    localparam int SUM_W = ((ACC_W > 32) ? ACC_W : 32) + 1;  // + bias
    localparam int KB_W  = (KB > 1) ? $clog2(KB) : 1;
    localparam int N_W   = (N > 1) ? $clog2(N) : 1;
    localparam logic [KB_W-1:0] KB_LAST = KB_W'(KB - 1);
    localparam logic [N_W-1:0]  N_LAST  = N_W'(N - 1);
    localparam logic signed [SUM_W-1:0] LO_S = SUM_W'(LO);
    localparam logic signed [SUM_W-1:0] HI_S = SUM_W'(HI);

    initial begin
        if (K % LANES != 0) $error("masec_linear: K must be a multiple of LANES");
        if (W_W > DW) $error("masec_linear: W_W too wide");
    end

    // ------------------------------------------------------------ parameter memories
    logic [W_W-1:0] wmem [N*K];
    logic [31:0]    bmem [N];
    /* verilator lint_off UNUSEDSIGNAL */     // unused without REQUANT
    logic [31:0]    mmem [N];
    logic [7:0]     smem [N];
    /* verilator lint_on UNUSEDSIGNAL */
    initial begin
        $readmemh(W_FILE, wmem);
        if (HAS_BIAS) $readmemh(B_FILE, bmem);
        else for (int n = 0; n < N; n++) bmem[n] = '0;
        if (REQUANT) begin
            $readmemh(M_FILE, mmem);
            $readmemh(S_FILE, smem);
        end else begin
            for (int n = 0; n < N; n++) begin
                mmem[n] = '0;
                smem[n] = '0;
            end
        end
    end

    // ------------------------------------------------------------ input buffers (ping-pong)
    logic [IN_W-1:0]  xbuf [2][K];
    logic [1:0]       full;                     // buffer holds a complete vector
    logic             wr_sel, rd_sel;           // buffer being loaded / computed from
    logic [KB_W-1:0]  in_cnt, k_cnt;
    logic [N_W-1:0]   n_cnt;
    logic             in_take, dot_take;

    assign in_ready = !full[wr_sel];
    assign in_take  = in_valid && in_ready;

    // ------------------------------------------------------------ dot product feed
    logic              dot_in_valid, dot_in_ready;
    logic [LANES*DW-1:0] dot_a, dot_b;
    logic              dot_valid, dot_ready;
    logic signed [ACC_W-1:0] dot_out;

    assign dot_in_valid = full[rd_sel];
    assign dot_take     = dot_in_valid && dot_in_ready;
    always_comb begin
        for (int l = 0; l < LANES; l++) begin
            logic signed [DW-1:0] xv;
            xv = IN_SIGNED ? DW'($signed(xbuf[rd_sel][int'(k_cnt) * LANES + l]))
                           : DW'({1'b0, xbuf[rd_sel][int'(k_cnt) * LANES + l]});
            dot_a[l*DW +: DW] = xv - DW'(ZP_IN);
            dot_b[l*DW +: DW] = DW'($signed(wmem[int'(n_cnt) * K + int'(k_cnt) * LANES + l]));
        end
    end

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            full   <= '0;
            wr_sel <= 1'b0;
            rd_sel <= 1'b0;
            in_cnt <= '0;
            k_cnt  <= '0;
            n_cnt  <= '0;
        end else begin
            // Loading finishes only on a buffer that is not full, computing only on a full one:
            // the two updates of `full` below never hit the same buffer in one cycle.
            if (in_take) begin
                in_cnt <= (in_cnt == KB_LAST) ? '0 : in_cnt + 1'b1;
                if (in_cnt == KB_LAST) begin
                    full[wr_sel] <= 1'b1;
                    wr_sel       <= !wr_sel;
                end
            end
            if (dot_take) begin
                k_cnt <= (k_cnt == KB_LAST) ? '0 : k_cnt + 1'b1;
                if (k_cnt == KB_LAST) begin
                    n_cnt <= (n_cnt == N_LAST) ? '0 : n_cnt + 1'b1;
                    if (n_cnt == N_LAST) begin
                        full[rd_sel] <= 1'b0;
                        rd_sel       <= !rd_sel;
                    end
                end
            end
        end
    end

    always_ff @(posedge clk) begin
        if (in_take)
            for (int l = 0; l < LANES; l++) xbuf[wr_sel][int'(in_cnt) * LANES + l] <= in_data[l*IN_W +: IN_W];
    end

    masec_dot #(.N(LANES), .W(DW), .K(KB), .ACC_W(ACC_W)) u_dot (
        .clk, .rst_n,
        .in_valid(dot_in_valid), .in_ready(dot_in_ready), .in_a(dot_a), .in_b(dot_b),
        .out_valid(dot_valid), .out_ready(dot_ready), .out_data(dot_out)
    );

    // ------------------------------------------------------------ bias, requantization
    logic [N_W-1:0]          ch;                // channel of the dot output
    logic signed [SUM_W-1:0] acc;
    logic                    acc_taken;
    assign acc       = SUM_W'(dot_out) + SUM_W'($signed(bmem[ch]));
    assign acc_taken = dot_valid && dot_ready;

    always_ff @(posedge clk) begin
        if (!rst_n) ch <= '0;
        else if (acc_taken) ch <= (ch == N_LAST) ? '0 : ch + 1'b1;
    end

    if (REQUANT) begin : g_requant
        masec_requant #(
            .LANES(1), .IN_W(SUM_W), .MULT_W(32), .SHIFT_W(8), .ZP_W(32), .OUT_W(OUT_W),
            .OUT_MIN(LO), .OUT_MAX(HI), .ROUNDING(ROUNDING)
        ) u_requant (
            .clk, .rst_n,
            .mult(mmem[ch]), .shift(smem[ch]), .zp(32'(ZP_OUT)),
            .in_valid(dot_valid), .in_ready(dot_ready), .in_data(acc),
            .out_valid, .out_ready, .out_data
        );
    end else begin : g_raw
        /* verilator lint_off UNUSEDSIGNAL */  // bits above OUT_W are the sign extension
        logic signed [SUM_W-1:0] clamped;
        /* verilator lint_on UNUSEDSIGNAL */
        always_comb begin
            clamped = acc;
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
