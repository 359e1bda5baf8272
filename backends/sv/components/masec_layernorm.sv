// masec_layernorm: integer layer normalization along a row of D codes, the
// dataflow.layer_norm op (= mase_compiler.numerics.intops.layer_norm, bit for bit).
//
// For each row q[0..D-1] (IN_W-bit codes, two's complement when IN_SIGNED):
//   x[i]  = q[i] - ZP_IN                                   exact
//   s1    = sum x,  s2 = sum x^2                           while the row loads
//   sigma = isqrt(D s2 - s1^2 + EPS)                       D times the standard deviation, >= 1
//   r     = floor(2^RB / sigma)                            once per row
//   n[i]  = round((D x[i] - s1) * r / 2^(RB-T))            the normalized value in Q.T
//   a[i]  = n[i] * gamma[i] + beta[i]                      exact
//   y[i]  = clamp(round(a[i] * MULT / 2^SHIFT) + ZP_OUT, LO, HI)
// "round" is half to even on the exact value (ROUNDING = "even"; "half_up"
// exists so tests can show that a wrong rounding is caught; see masec_requant).
// G_FILE holds D gamma codes (signed G_W-bit hex words), B_FILE D beta values
// at the scale s_gamma 2^-T (64-bit two's complement hex words).  A compiler
// sets (MULT, SHIFT) = quantize_multiplier(s_gamma 2^-T / s_out, bits=24) and
// EPS = max(1, round(eps D^2 / s_in^2)) (64 bits; give it sized, e.g. 64'd58982,
// since a plain decimal -G value is read as 32 bits).  ZP_IN must be a code of
// the input grid, EPS >= 1, D s2 - s1^2 + EPS < 2^63 (the oracle's int64).
//
// Rows arrive one code per beat, row-major; outputs leave one code per beat in
// the same order.  Pipeline (rows stream back to back):
//   load    q into one of SLOTS row buffers, s1 and s2 accumulating beside it;
//   stats   sigma in masec_isqrt (ceil(V_W / 2) + 1 cycles per row), then r in
//           masec_udiv (RB + 2 cycles per row); the two overlap on consecutive rows;
//   emit    n through masec_requant (the Q.T rounding by the row's r), a = n gamma
//           + beta, y through masec_requant_const, one element per cycle.
// Cycles per row in steady state with no stalls (on average over SLOTS rows):
//   max(D, RB + 2, ceil(V_W / 2) + 1, (2 D + ceil(V_W / 2) + RB + 4) / SLOTS)
// where RB + 2 and ceil(V_W / 2) + 1 are the divider's and the square root's
// periods and a row buffer is held for 2 D + ceil(V_W / 2) + RB + 4 cycles, from
// its first input to its last output; V_W = max(2 IN_W + 2 ceil(log2 D),
// bits(EPS)) + 1.  E.g. RB = 40, int8, EPS < 2^22: D = 8 (V_W = 23) takes 42
// cycles per row with SLOTS = 2; D = 32 (V_W = 27) 61 with SLOTS = 2, 42 with
// SLOTS = 3; D = 64 with SLOTS = 3 runs at the input rate, 64.
// Latency from the last input of a row to its first output: ceil(V_W / 2) + RB + 7
// cycles.  Storage: SLOTS D IN_W-bit codes, D gammas, D 64-bit betas.
module masec_layernorm #(
    parameter int          IN_W      = 8,
    parameter bit          IN_SIGNED = 1'b1,
    parameter int          ZP_IN     = 0,
    parameter int          D         = 8,
    parameter logic [63:0] EPS       = 64'd1,
    parameter int          RB        = 40,                // intops.NORM_RECIP_BITS
    parameter int          T         = 12,                // intops.NORM_FRAC_BITS
    parameter int          G_W       = 16,
    parameter logic [31:0] MULT      = 32'd1,
    parameter int          SHIFT     = 0,
    parameter int          ZP_OUT    = 0,
    parameter int          OUT_W     = 8,
    parameter int          LO        = -128,
    parameter int          HI        = 127,
    parameter int          SLOTS     = 2,
    // Strings without the string type, which Yosys lacks (see masec_requant).
    parameter logic [8*7-1:0] ROUNDING = "even",
    parameter              G_FILE    = "gamma.mem",
    parameter              B_FILE    = "beta.mem"
) (
    input  logic             clk,
    input  logic             rst_n,
    input  logic             in_valid,
    output logic             in_ready,
    input  logic [IN_W-1:0]  in_data,
    output logic             out_valid,
    input  logic             out_ready,
    output logic [OUT_W-1:0] out_data
);
    localparam int LD    = $clog2(D);
    localparam int X_W   = IN_W + 1;                     // x = q - ZP_IN, signed
    localparam int S1_W  = X_W + LD;                     // |s1| < D 2^IN_W
    localparam int S2_W  = 2 * IN_W + LD;                // s2 < D 2^(2 IN_W)
    localparam int VT_W  = 2 * IN_W + 2 * LD;            // 0 <= D s2 - s1^2 < D^2 2^(2 IN_W)
    localparam int EPS_W = $clog2(EPS + 64'd1);          // bits of EPS
    localparam int V_W   = ((VT_W > EPS_W) ? VT_W : EPS_W) + 1;
    localparam int SG_W  = (V_W + 1) / 2;                // sigma
    localparam int R_W   = RB + 1;                       // r <= 2^RB
    localparam int C_W   = X_W + LD + 1;                 // c = D x - s1, |c| < 2 D 2^IN_W
    // |n| < 2 sqrt(D - 1) 2^T + 1: |c| <= sqrt((D - 1)(D s2 - s1^2)) (Samuelson's inequality)
    // and sigma > sqrt(D s2 - s1^2) / 2 (EPS >= 1), so u_n's clamp to N_W bits never acts.
    localparam int N_W   = T + (LD + 1) / 2 + 3;
    localparam int N_MAX = (1 << (N_W - 1)) - 1;
    localparam int ACC_W = ((N_W + G_W > 64) ? N_W + G_W : 64) + 1;   // n gamma + beta
    localparam int I_W   = (D > 1) ? $clog2(D) : 1;      // element index
    localparam int SL_W  = $clog2(SLOTS);
    localparam logic [I_W-1:0] LAST = I_W'(D - 1);

    localparam logic signed [63:0] ZP_MIN = IN_SIGNED ? -(64'sd1 <<< (IN_W - 1)) : 64'sd0;
    localparam logic signed [63:0] ZP_MAX = IN_SIGNED ? (64'sd1 <<< (IN_W - 1)) - 1 : (64'sd1 <<< IN_W) - 1;

    // row buffer states, in the order a buffer goes through them
    localparam logic [1:0] FREE = 2'd0, LOADED = 2'd1, STATS = 2'd2, READY = 2'd3;

    initial begin
        if (D < 1) $error("masec_layernorm: D must be at least 1, not %0d", D);
        if (SLOTS < 2) $error("masec_layernorm: SLOTS must be at least 2, not %0d", SLOTS);
        if (T < 0 || T > RB || RB > 254) $error("masec_layernorm: need 0 <= T <= RB <= 254");
        if (N_W > 31) $error("masec_layernorm: T + ceil(log2(D) / 2) must be at most 28");
        if (G_W < 1 || G_W > 32) $error("masec_layernorm: G_W must be in [1, 32], not %0d", G_W);
        if (EPS == 64'd0) $error("masec_layernorm: EPS must be at least 1");
        if (64'(ZP_IN) < ZP_MIN || 64'(ZP_IN) > ZP_MAX)
            $error("masec_layernorm: ZP_IN must be a code of the input grid, not %0d", ZP_IN);
        if (SHIFT < 0) $error("masec_layernorm: SHIFT must be >= 0, not %0d", SHIFT);
    end

    function automatic logic [SL_W-1:0] next_slot(input logic [SL_W-1:0] s);
        next_slot = (s == SL_W'(SLOTS - 1)) ? '0 : s + 1'b1;
    endfunction

    function automatic logic signed [X_W-1:0] centred(input logic [IN_W-1:0] q);   // q - ZP_IN
        centred = (IN_SIGNED ? X_W'($signed(q)) : X_W'({1'b0, q})) - X_W'(ZP_IN);
    endfunction

    logic signed [G_W-1:0] gmem [D];
    logic signed [63:0]    bmem [D];
    initial begin
        $readmemh(G_FILE, gmem);
        $readmemh(B_FILE, bmem);
    end

    // ------------------------------------------------------------ row buffers
    logic [IN_W-1:0]        qbuf [SLOTS][D];
    logic signed [S1_W-1:0] s1r  [SLOTS];
    logic [S2_W-1:0]        s2r  [SLOTS];
    logic [R_W-1:0]         rr   [SLOTS];
    logic [1:0]             st   [SLOTS];
    logic [SL_W-1:0]        wptr, sptr, rptr, optr;   // slot loaded / sent to isqrt / back from the divider / emitted

    // ------------------------------------------------------------ load: s1, s2
    logic [I_W-1:0]           wi;
    logic                     in_take;
    logic signed [X_W-1:0]    x_in;
    /* verilator lint_off UNUSEDSIGNAL */
    logic signed [2*X_W-1:0]  x_sq;                  // < 2^(2 IN_W): the top bits are zero
    /* verilator lint_on UNUSEDSIGNAL */
    logic signed [S1_W-1:0]   s1_acc, s1_next;
    logic [S2_W-1:0]          s2_acc, s2_next;

    assign in_ready = (st[wptr] == FREE);
    assign in_take  = in_valid && in_ready;
    assign x_in     = centred(in_data);
    assign x_sq     = x_in * x_in;
    assign s1_next  = ((wi == '0) ? '0 : s1_acc) + S1_W'(x_in);
    assign s2_next  = ((wi == '0) ? '0 : s2_acc) + S2_W'(x_sq);

    // ------------------------------------------------------------ stats: sigma, then r
    /* verilator lint_off UNUSEDSIGNAL */
    logic signed [2*S1_W-1:0] s1_sq;                 // < 2^VT_W: the top bits are zero
    /* verilator lint_on UNUSEDSIGNAL */
    logic [VT_W-1:0]          vt;
    logic [V_W-1:0]           v;
    logic                     sq_in_ready, sq_valid, div_in_ready, div_valid;
    logic [SG_W-1:0]          sigma;
    logic [R_W-1:0]           r;
    /* verilator lint_off UNUSEDSIGNAL */
    logic [SG_W:0]            sq_rem;
    logic [SG_W-1:0]          div_rem;
    /* verilator lint_on UNUSEDSIGNAL */

    assign s1_sq = s1r[sptr] * s1r[sptr];
    assign vt    = VT_W'(s2r[sptr]) * VT_W'(D) - VT_W'(s1_sq);   // >= 0 (Cauchy-Schwarz)
    assign v     = V_W'(vt) + V_W'(EPS);

    masec_isqrt #(.V_W(V_W)) u_sqrt (
        .clk, .rst_n,
        .in_valid(st[sptr] == LOADED), .in_ready(sq_in_ready), .in_data(v),
        .out_valid(sq_valid), .out_ready(div_in_ready), .out_root(sigma), .out_rem(sq_rem)
    );

    masec_udiv #(.N_W(R_W), .D_W(SG_W), .Q_W(R_W)) u_div (
        .clk, .rst_n,
        .in_valid(sq_valid), .in_ready(div_in_ready), .in_num(R_W'(1) << RB), .in_den(sigma),
        .out_valid(div_valid), .out_ready(1'b1), .out_quot(r), .out_rem(div_rem)
    );

    // ------------------------------------------------------------ emit: n, then a and y
    logic [I_W-1:0]          oi, ch;                // element read / element whose n waits for gamma
    logic                    emit_valid, emit_ready;
    logic signed [C_W-1:0]   c;
    logic                    n_valid, n_ready;
    logic signed [N_W-1:0]   n;
    logic signed [ACC_W-1:0] acc;

    assign emit_valid = (st[optr] == READY);
    assign c          = C_W'(centred(qbuf[optr][oi])) * C_W'(D) - C_W'(s1r[optr]);

    masec_requant #(
        .LANES(1), .IN_W(C_W), .MULT_W(R_W), .SHIFT_W(8), .ZP_W(1), .OUT_W(N_W),
        .OUT_MIN(-N_MAX - 1), .OUT_MAX(N_MAX), .ROUNDING(ROUNDING)
    ) u_n (
        .clk, .rst_n, .mult(rr[optr]), .shift(8'(RB - T)), .zp(1'b0),
        .in_valid(emit_valid), .in_ready(emit_ready), .in_data(c),
        .out_valid(n_valid), .out_ready(n_ready), .out_data(n)
    );

    assign acc = ACC_W'(n) * ACC_W'(gmem[ch]) + ACC_W'(bmem[ch]);

    masec_requant_const #(
        .IN_W(ACC_W), .MULT(MULT), .SHIFT(SHIFT), .ZP(ZP_OUT), .OUT_W(OUT_W), .OUT_MIN(LO), .OUT_MAX(HI),
        .ROUNDING(ROUNDING)
    ) u_y (
        .clk, .rst_n, .in_valid(n_valid), .in_ready(n_ready), .in_data(acc),
        .out_valid, .out_ready, .out_data
    );

    // ------------------------------------------------------------ control
    // Each row buffer moves FREE -> LOADED -> STATS -> READY -> FREE, and each
    // transition below starts from a different state, so no two of them ever
    // write the same buffer's state in one cycle.
    always_ff @(posedge clk) begin
        if (!rst_n) begin
            wi   <= '0;
            oi   <= '0;
            ch   <= '0;
            wptr <= '0;
            sptr <= '0;
            rptr <= '0;
            optr <= '0;
            for (int s = 0; s < SLOTS; s++) st[s] <= FREE;
        end else begin
            if (in_take) begin
                wi <= (wi == LAST) ? '0 : wi + 1'b1;
                if (wi == LAST) begin
                    st[wptr] <= LOADED;
                    wptr     <= next_slot(wptr);
                end
            end
            if (st[sptr] == LOADED && sq_in_ready) begin
                st[sptr] <= STATS;
                sptr     <= next_slot(sptr);
            end
            if (div_valid) begin
                st[rptr] <= READY;
                rptr     <= next_slot(rptr);
            end
            if (emit_valid && emit_ready) begin
                oi <= (oi == LAST) ? '0 : oi + 1'b1;
                if (oi == LAST) begin
                    st[optr] <= FREE;
                    optr     <= next_slot(optr);
                end
            end
            if (n_valid && n_ready) ch <= (ch == LAST) ? '0 : ch + 1'b1;
        end
    end

    // Datapath registers and buffers (no reset needed: the control says what is valid).
    always_ff @(posedge clk) begin
        if (in_take) begin
            qbuf[wptr][wi] <= in_data;
            s1_acc         <= s1_next;
            s2_acc         <= s2_next;
            if (wi == LAST) begin
                s1r[wptr] <= s1_next;
                s2r[wptr] <= s2_next;
            end
        end
        if (div_valid) rr[rptr] <= r;
    end
endmodule
