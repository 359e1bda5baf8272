// masec_softmax: integer softmax along a row of N codes, the dataflow.softmax op
// (= mase_compiler.numerics.intops.softmax, bit for bit).
//
// For each row q[0..N-1] (IN_W-bit codes, two's complement when IN_SIGNED):
//   d[i] = max(q) - q[i]                                   >= 0, exact
//   t[i] = min(round(d[i] * MULT / 2^SHIFT), 16 * 2^FRAC)  log2(e) * d * s_in in Q.FRAC
//   e[i] = lut[t[i] mod 2^FRAC] >> (t[i] >> FRAC)          ~ 2^15 exp(-d s_in), in [0, 2^15]
//   R    = floor(NUM / sum(e))                             once per row, 49 bits (sum >= 2^15)
//   y[i] = clamp(round(e[i] * R / 2^RB) + ZP_OUT, LO, HI)
// "round" is half to even on the exact value (ROUNDING = "even"; "half_up"
// exists so tests can show that a wrong rounding is caught; see masec_requant).
// LUT_FILE holds intops.exp2_table(FRAC): 2^FRAC hex words of 16 bits.  A
// compiler sets (MULT, SHIFT) = quantize_multiplier(s_in / ln 2 * 2^FRAC) and
// NUM = round(2^RB / s_out) (64 bits; give it sized, e.g. 64'd1099511627776,
// since a plain decimal -G value is read as 32 bits).
//
// Rows arrive one code per beat, row-major; outputs leave one code per beat in
// the same order.  Pipeline (rows stream back to back, every stage works on a
// different row):
//   load    q into one of two row buffers (ping-pong), the running max beside it;
//   exp     a full row buffer, one element per cycle: t through masec_requant_const
//           (clamped to [0, 16 * 2^FRAC]), e from the table, written into one of
//           SLOTS e-row buffers while the sum accumulates;
//   divide  R = floor(NUM / sum) in masec_udiv, 49 + 1 cycles per row;
//   emit    e * R through masec_requant (round, + ZP_OUT, clamp), one per cycle.
// Cycles per row in steady state with no stalls (on average over SLOTS rows):
//   max(N, 50, (2 N + 52) / SLOTS)
// (an e-row buffer is held for 2 N + 52 cycles, from its exp pass through its
// emission).  With SLOTS = 2 that is 50 for N <= 24 and N + 26 above; SLOTS = 3
// reaches max(N, 50) (but for N = 50, 51).  Latency from the last input of a
// row to its first output: N + 54 cycles.  Storage: 2 N IN_W-bit codes and
// SLOTS N 16-bit e values.
module masec_softmax #(
    parameter int          IN_W      = 8,
    parameter bit          IN_SIGNED = 1'b1,
    parameter int          N         = 8,
    parameter logic [31:0] MULT      = 32'd1,
    parameter int          SHIFT     = 0,
    parameter int          FRAC      = 6,
    parameter logic [63:0] NUM       = 64'd1099511627776,   // 2^40 = round(2^32 / (1/256))
    parameter int          RB        = 32,
    parameter int          ZP_OUT    = 0,
    parameter int          OUT_W     = 8,
    parameter int          LO        = 0,
    parameter int          HI        = 255,
    parameter int          SLOTS     = 2,
    // Strings without the string type, which Yosys lacks (see masec_requant).
    parameter logic [8*7-1:0] ROUNDING = "even",
    parameter              LUT_FILE  = "exp2.mem"
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
    localparam int EXP_BITS = 15;                        // intops.EXP_BITS: lut[0] = 2^15
    localparam int LIMIT    = (EXP_BITS + 1) << FRAC;    // t clamp: e = 0 from there on
    localparam int T_W      = FRAC + 5;                  // t in [0, 2^(FRAC+4)]
    localparam int E_W      = EXP_BITS + 1;              // e in [0, 2^15]
    localparam int D_W      = IN_W + 1;                  // codes and d = max - q, signed
    localparam int SUM_W    = E_W + $clog2(N);           // sum <= N 2^15
    localparam int R_W      = 64 - EXP_BITS;             // R = NUM / sum < 2^64 / 2^15
    localparam int I_W      = (N > 1) ? $clog2(N) : 1;   // element index
    localparam int SL_W     = $clog2(SLOTS);
    localparam logic [I_W-1:0] LAST = I_W'(N - 1);

    // e-row buffer states, in the order a buffer goes through them
    localparam logic [2:0] FREE = 3'd0, FILL = 3'd1, FILLED = 3'd2, DIV = 3'd3, READY = 3'd4;

    initial begin
        if (N < 1) $error("masec_softmax: N must be at least 1, not %0d", N);
        if (FRAC < 1 || FRAC > 16) $error("masec_softmax: FRAC must be in [1, 16], not %0d", FRAC);
        if (SLOTS < 2) $error("masec_softmax: SLOTS must be at least 2, not %0d", SLOTS);
        if (SHIFT < 0 || RB < 0 || RB > 255) $error("masec_softmax: need SHIFT >= 0 and 0 <= RB <= 255");
    end

    function automatic logic [SL_W-1:0] next_slot(input logic [SL_W-1:0] s);
        next_slot = (s == SL_W'(SLOTS - 1)) ? '0 : s + 1'b1;
    endfunction

    function automatic logic signed [D_W-1:0] code(input logic [IN_W-1:0] q);
        code = IN_SIGNED ? D_W'($signed(q)) : D_W'({1'b0, q});
    endfunction

    logic [E_W-1:0] lut [2**FRAC];
    initial $readmemh(LUT_FILE, lut);

    // ------------------------------------------------------------ load: row buffers with their max
    logic [IN_W-1:0]       qbuf [2][N];
    logic signed [D_W-1:0] qmax [2];
    logic [1:0]            qfull;                        // buffer holds a whole row for exp
    logic                  wsel, rsel;                   // buffer being loaded / read by exp
    logic [I_W-1:0]        wi;
    logic signed [D_W-1:0] run_max, new_max;
    logic                  in_take;

    assign in_ready = !qfull[wsel];
    assign in_take  = in_valid && in_ready;
    assign new_max  = (wi == '0 || code(in_data) > run_max) ? code(in_data) : run_max;

    // ------------------------------------------------------------ e-row buffers
    logic [E_W-1:0]   ebuf [SLOTS][N];
    logic [SUM_W-1:0] esum [SLOTS];
    logic [R_W-1:0]   rbuf [SLOTS];
    logic [2:0]       est  [SLOTS];
    logic [SL_W-1:0]  ews, dv_in, dv_out, ows;           // slot filled by exp / sent to, back from
                                                         // the divider / emitted

    // ------------------------------------------------------------ exp: t = requant(d), then e = lut >> (t >> FRAC)
    logic [I_W-1:0]        ei;
    logic                  issue;
    logic signed [D_W-1:0] d;
    logic                  t_valid;
    logic [T_W-1:0]        t;
    logic [I_W-1:0]        t_idx;                        // travel beside t through the requantizer's register
    logic [SL_W-1:0]       t_slot;
    logic                  t_last;
    logic [E_W-1:0]        e;
    logic [SUM_W-1:0]      sum_acc, sum_next;
    /* verilator lint_off UNUSEDSIGNAL */
    logic                  t_in_ready;                   // always 1: the t register never stalls
    /* verilator lint_on UNUSEDSIGNAL */

    assign issue = qfull[rsel] && (ei != '0 || est[ews] == FREE);
    assign d     = qmax[rsel] - code(qbuf[rsel][ei]);

    masec_requant_const #(
        .IN_W(D_W), .MULT(MULT), .SHIFT(SHIFT), .ZP(0), .OUT_W(T_W), .OUT_MIN(0), .OUT_MAX(LIMIT),
        .ROUNDING(ROUNDING)
    ) u_t (
        .clk, .rst_n, .in_valid(issue), .in_ready(t_in_ready), .in_data(d),
        .out_valid(t_valid), .out_ready(1'b1), .out_data(t)
    );

    assign e        = lut[t[FRAC-1:0]] >> t[T_W-1:FRAC];
    assign sum_next = ((t_idx == '0) ? '0 : sum_acc) + SUM_W'(e);

    // ------------------------------------------------------------ divide: R = floor(NUM / sum)
    logic           div_in_ready, div_valid;
    logic [R_W-1:0] quot;
    /* verilator lint_off UNUSEDSIGNAL */
    logic [SUM_W-1:0] div_rem;
    /* verilator lint_on UNUSEDSIGNAL */

    masec_udiv #(.N_W(64), .D_W(SUM_W), .Q_W(R_W)) u_div (
        .clk, .rst_n,
        .in_valid(est[dv_in] == FILLED), .in_ready(div_in_ready), .in_num(NUM), .in_den(esum[dv_in]),
        .out_valid(div_valid), .out_ready(1'b1), .out_quot(quot), .out_rem(div_rem)
    );

    // ------------------------------------------------------------ emit: y = requant(e * R)
    logic [I_W-1:0] oi;
    logic           emit_valid, emit_ready;

    assign emit_valid = (est[ows] == READY);

    masec_requant #(
        .LANES(1), .IN_W(E_W + 1), .MULT_W(R_W), .SHIFT_W(8), .ZP_W(32), .OUT_W(OUT_W),
        .OUT_MIN(LO), .OUT_MAX(HI), .ROUNDING(ROUNDING)
    ) u_y (
        .clk, .rst_n, .mult(rbuf[ows]), .shift(8'(RB)), .zp(ZP_OUT),
        .in_valid(emit_valid), .in_ready(emit_ready), .in_data({1'b0, ebuf[ows][oi]}),
        .out_valid, .out_ready, .out_data
    );

    // ------------------------------------------------------------ control
    // Each e-row buffer moves FREE -> FILL -> FILLED -> DIV -> READY -> FREE, and each
    // transition below starts from a different state, so no two of them ever write
    // the same buffer's state in one cycle.
    always_ff @(posedge clk) begin
        if (!rst_n) begin
            qfull  <= '0;
            wsel   <= 1'b0;
            rsel   <= 1'b0;
            wi     <= '0;
            ei     <= '0;
            oi     <= '0;
            ews    <= '0;
            dv_in  <= '0;
            dv_out <= '0;
            ows    <= '0;
            for (int s = 0; s < SLOTS; s++) est[s] <= FREE;
        end else begin
            if (in_take) begin                           // load ends only on a buffer exp does not own
                wi <= (wi == LAST) ? '0 : wi + 1'b1;
                if (wi == LAST) begin
                    qfull[wsel] <= 1'b1;
                    wsel        <= !wsel;
                end
            end
            if (issue) begin
                if (ei == '0) est[ews] <= FILL;
                ei <= (ei == LAST) ? '0 : ei + 1'b1;
                if (ei == LAST) begin                    // the last code has been read: free the row buffer
                    qfull[rsel] <= 1'b0;
                    rsel        <= !rsel;
                    ews         <= next_slot(ews);
                end
            end
            if (t_valid && t_last) est[t_slot] <= FILLED;
            if (est[dv_in] == FILLED && div_in_ready) begin
                est[dv_in] <= DIV;
                dv_in      <= next_slot(dv_in);
            end
            if (div_valid) begin
                est[dv_out] <= READY;
                dv_out      <= next_slot(dv_out);
            end
            if (emit_valid && emit_ready) begin
                oi <= (oi == LAST) ? '0 : oi + 1'b1;
                if (oi == LAST) begin
                    est[ows] <= FREE;
                    ows      <= next_slot(ows);
                end
            end
        end
    end

    // Datapath registers and buffers (no reset needed: the control says what is valid).
    always_ff @(posedge clk) begin
        if (in_take) begin
            qbuf[wsel][wi] <= in_data;
            run_max        <= new_max;
            if (wi == LAST) qmax[wsel] <= new_max;
        end
        if (issue) begin
            t_idx  <= ei;
            t_slot <= ews;
            t_last <= (ei == LAST);
        end
        if (t_valid) begin
            ebuf[t_slot][t_idx] <= e;
            sum_acc             <= sum_next;
            if (t_last) esum[t_slot] <= sum_next;
        end
        if (div_valid) rbuf[dv_out] <= quot;
    end
endmodule
