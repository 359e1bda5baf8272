// masec_mx_linear: streaming linear layer on OCP MX operands (MXINT8 and MXFP elements).
//
// x: R rows of K element codes in blocks of B along K, each block with an E8M0 scale
// code sx (value 2^(sx-127)); w: N channels of K codes in blocks of B, scale codes sw.
// Elements decode exactly to integers (masec_mx_elem: v = int * 2^-FE).  Per row,
// channel n and block b:
//
//   m = sum_{i<B} int(x[bB+i]) * int(w[n][bB+i])                      (exact integer)
//   e = (sx - 127) + (sw - 127) - FE_X - FE_W                          (block exponent)
//   c = round_half_even(m * 2^(e + FRAC))        exact left shift when e + FRAC >= 0
//   acc = sat(... sat(sat(c_0) + c_1) ... + c_{K/B-1})   sat = clamp to ACC_BITS signed
//
// and the output code is
//   REQUANT = 1:  y[n] = clamp(round(acc * M[n] / 2^S[n]) + ZP_OUT, LO, HI)   (masec_requant)
//   REQUANT = 0:  y[n] = acc, sign-extended to OUT_W (>= ACC_BITS) bits
//
// = mase_compiler.numerics.mx_hw.mx_linear, then numerics.requant.requantize.  The
// accumulator across blocks is fixed point at the compile-time exponent 2^-FRAC (its
// real value is acc * 2^-FRAC), chosen by the compiler so the layer's sums fit
// ACC_BITS; aligning a block's exact integer sum to it is one barrel shift with one
// rounding (round half to even; ALIGN = "floor" truncates instead: NOT the definition,
// it exists so tests can show that a truncating alignment is caught).  The
// accumulator saturates at every block; c is clamped to +-2^ACC_BITS first, which
// changes no result (a larger |c| saturates the sum whatever acc holds).  Scale code
// 255 (NaN) has no integer meaning and is outside the contract (decoded as 2^128).
//
// Interface: each input beat carries LANES element codes of ELEM_X (EW_X bits each,
// lane l in bits [l*EW_X +: EW_X]) and in_scale, the E8M0 code of the block the beat
// belongs to (held for all B/LANES beats of a block; the last beat's is used).  Output:
// N codes of OUT_W bits per row, one per beat, channel 0 first.
// Parameters from $readmemh files, one hex word per line:
//   W_FILE   N*K element codes of ELEM_W, index n*K + k (output-channel major)
//   WS_FILE  N*(K/B) E8M0 scale codes, index n*(K/B) + b
//   M_FILE   N multipliers of 32 bits (unsigned), S_FILE N shifts of 8 bits (REQUANT = 1)
//
// Hardware: products are of mantissas (masec_mx_elem: an (M_BITS+2)-bit signed
// product, shifted left by the two element shifts), so MXFP4 needs 3x3 multipliers
// and MXFP8 E4M3 5x5 ones; the block sum is exact in IW_X + IW_W + log2(B) bits.
// Pipeline: buffer (ping-pong, as masec_linear) -> block MAC over B/LANES beats ->
// alignment register (shift, round, clamp) -> saturating accumulator over K/B blocks
// -> masec_requant or the output register.  Every stage takes one item per cycle, so
// the steady state is N*K/LANES cycles per row (K/LANES per output code), while the
// next row is loaded; a channel's code is out K/LANES + 2 cycles after its first
// beat is computed (+1 with REQUANT).  The aligner and the accumulator work once per
// B/LANES cycles (once per block), on a register of the exact block sum.
module masec_mx_linear #(
    parameter int K        = 64,
    parameter int N        = 8,
    parameter int B        = 32,
    parameter int LANES    = 4,
    // element formats (see masec_mx_elem), packed into 8 bytes: Yosys has no string parameters
    parameter logic [8*8-1:0] ELEM_X = "int8",
    parameter logic [8*8-1:0] ELEM_W = "int8",
    parameter int FRAC     = 0,
    parameter int ACC_BITS = 32,
    parameter int OUT_W    = 8,
    parameter int ZP_OUT   = 0,
    parameter int LO       = -128,
    parameter int HI       = 127,
    parameter bit REQUANT  = 1'b1,
    parameter logic [8*7-1:0] ROUNDING = "even",     // masec_requant's: "even", "away", "half_up"
    parameter logic [8*5-1:0] ALIGN    = "even",     // "even"; "floor" only to show it is caught
    parameter        W_FILE  = "w.mem",
    parameter        WS_FILE = "ws.mem",
    parameter        M_FILE  = "m.mem",
    parameter        S_FILE  = "s.mem",
    // Derived from ELEM_X (leave it at its default): the bits of one input code.
    parameter int EW_X = (ELEM_X == "fp4_e2m1") ? 4 : (ELEM_X == "fp6_e2m3" || ELEM_X == "fp6_e3m2") ? 6 : 8
) (
    input  logic                   clk,
    input  logic                   rst_n,
    input  logic                   in_valid,
    output logic                   in_ready,
    input  logic [LANES*EW_X-1:0]  in_data,
    input  logic [7:0]             in_scale,
    output logic                   out_valid,
    input  logic                   out_ready,
    output logic [OUT_W-1:0]       out_data
);
    // ------------------------------------------------------------ element formats
    // (masec_mx_elem's table: E bits, M bits; E = 0 is int8 with 6 fraction bits)
    localparam int E_X = (ELEM_X == "fp8_e4m3") ? 4 : (ELEM_X == "fp8_e5m2") ? 5 : (ELEM_X == "fp6_e3m2") ? 3
                       : (ELEM_X == "fp6_e2m3" || ELEM_X == "fp4_e2m1") ? 2 : 0;
    localparam int M_X = (ELEM_X == "fp8_e4m3" || ELEM_X == "fp6_e2m3") ? 3
                       : (ELEM_X == "fp8_e5m2" || ELEM_X == "fp6_e3m2") ? 2 : (ELEM_X == "fp4_e2m1") ? 1 : 6;
    localparam int E_W = (ELEM_W == "fp8_e4m3") ? 4 : (ELEM_W == "fp8_e5m2") ? 5 : (ELEM_W == "fp6_e3m2") ? 3
                       : (ELEM_W == "fp6_e2m3" || ELEM_W == "fp4_e2m1") ? 2 : 0;
    localparam int M_W = (ELEM_W == "fp8_e4m3" || ELEM_W == "fp6_e2m3") ? 3
                       : (ELEM_W == "fp8_e5m2" || ELEM_W == "fp6_e3m2") ? 2 : (ELEM_W == "fp4_e2m1") ? 1 : 6;
    localparam int EW_W    = (E_W == 0) ? 8 : 1 + E_W + M_W;
    localparam int MANT_XW = (E_X == 0) ? 8 : M_X + 2;
    localparam int MANT_WW = (E_W == 0) ? 8 : M_W + 2;
    localparam int SH_XW   = (E_X == 0) ? 1 : E_X;
    localparam int SH_WW   = (E_W == 0) ? 1 : E_W;
    localparam int SHMAX_X = (E_X == 0) ? 0 : (1 << E_X) - 2;
    localparam int SHMAX_W = (E_W == 0) ? 0 : (1 << E_W) - 2;
    localparam int FE_X    = (E_X == 0) ? 6 : M_X + (1 << (E_X - 1)) - 2;   // M bits + bias - 1
    localparam int FE_W    = (E_W == 0) ? 6 : M_W + (1 << (E_W - 1)) - 2;
    localparam int SH_SUMW = ((SH_XW > SH_WW) ? SH_XW : SH_WW) + 1;
    localparam int PM_W    = MANT_XW + MANT_WW;                      // mantissa product
    localparam int P_W     = PM_W + SHMAX_X + SHMAX_W;               // = IW_X + IW_W: int(x) * int(w)
    localparam int MW      = P_W + $clog2(B);                        // exact block sum

    // ------------------------------------------------------------ shapes, counters
    localparam int KB   = K / LANES;                                 // beats per row
    localparam int BPB  = B / LANES;                                 // beats per block
    localparam int NB   = K / B;                                     // blocks per row
    localparam int KB_W = (KB > 1) ? $clog2(KB) : 1;
    localparam int BP_W = (BPB > 1) ? $clog2(BPB) : 1;
    localparam int NB_W = (NB > 1) ? $clog2(NB) : 1;
    localparam int N_W  = (N > 1) ? $clog2(N) : 1;
    localparam logic [KB_W-1:0] KB_LAST = KB_W'(KB - 1);
    localparam logic [BP_W-1:0] BP_LAST = BP_W'(BPB - 1);
    localparam logic [NB_W-1:0] NB_LAST = NB_W'(NB - 1);
    localparam logic [N_W-1:0]  N_LAST  = N_W'(N - 1);

    // ------------------------------------------------------------ alignment
    localparam int T_W    = 12;                                      // block exponent e + FRAC, signed
    localparam int T_OFF  = 254 + FE_X + FE_W - FRAC;                // e + FRAC = sx + sw - T_OFF
    localparam int LW     = MW + ACC_BITS + 2;                       // m << (ACC_BITS + 1), signed
    localparam int RC_MAX = MW + 1;                                  // right shifts beyond: 0 either way
    localparam int RC_W   = $clog2(RC_MAX + 1);
    localparam int RW     = MW + 2;                                  // right shifts: m, the rounded quotient
    localparam int TL_W   = $clog2(ACC_BITS + 2);                    // left shifts: 0..ACC_BITS + 1
    localparam int C_W    = ACC_BITS + 2;                            // c clamped to +-2^ACC_BITS; acc + c
    localparam logic signed [LW-1:0]  C_MAX   = LW'(1) <<< ACC_BITS;
    localparam logic signed [LW-1:0]  C_MIN   = -C_MAX;
    localparam logic signed [T_W-1:0] TL_MAX  = T_W'(ACC_BITS + 1);
    localparam logic signed [T_W-1:0] TR_MAX  = T_W'(RC_MAX);
    localparam logic signed [C_W-1:0] ACC_MAX = (C_W'(1) <<< (ACC_BITS - 1)) - (C_W'(1));
    localparam logic signed [C_W-1:0] ACC_MIN = -ACC_MAX - 1;

    initial begin
        if (K % B != 0 || B % LANES != 0) $error("masec_mx_linear: B must divide K and LANES must divide B");
        if (FRAC < -1024 || FRAC > 1024) $error("masec_mx_linear: FRAC must be in -1024..1024, not %0d", FRAC);
        if (ACC_BITS < 2 || ACC_BITS > 64) $error("masec_mx_linear: ACC_BITS must be in 2..64, not %0d", ACC_BITS);
        if (!REQUANT && OUT_W < ACC_BITS) $error("masec_mx_linear: REQUANT = 0 needs OUT_W >= ACC_BITS");
        if (ALIGN != "even" && ALIGN != "floor") $error("masec_mx_linear: ALIGN must be even or floor, not %s", ALIGN);
    end

    // ------------------------------------------------------------ parameter memories
    logic [EW_W-1:0] wmem  [N*K];
    logic [7:0]      wsmem [N*NB];
    /* verilator lint_off UNUSEDSIGNAL */     // unused without REQUANT
    logic [31:0]     mmem  [N];
    logic [7:0]      smem  [N];
    /* verilator lint_on UNUSEDSIGNAL */
    initial begin
        $readmemh(W_FILE, wmem);
        $readmemh(WS_FILE, wsmem);
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
    logic [EW_X-1:0] xbuf [2][K];
    logic [7:0]      sbuf [2][NB];
    logic [1:0]      full;                     // buffer holds a complete row
    logic            wr_sel, rd_sel;           // buffer being loaded / computed from
    logic [KB_W-1:0] in_cnt;
    logic [BP_W-1:0] in_j;
    logic [NB_W-1:0] in_b;
    logic            in_take;

    assign in_ready = !full[wr_sel];
    assign in_take  = in_valid && in_ready;

    always_ff @(posedge clk) begin
        if (in_take) begin
            for (int l = 0; l < LANES; l++) xbuf[wr_sel][int'(in_cnt) * LANES + l] <= in_data[l*EW_X +: EW_X];
            sbuf[wr_sel][in_b] <= in_scale;
        end
    end

    // ------------------------------------------------------------ stage 1: block MAC
    logic [KB_W-1:0] k_cnt;                    // beat of the row
    logic [BP_W-1:0] j_cnt;                    // beat of the block
    logic [NB_W-1:0] b_cnt;                    // block
    logic [N_W-1:0]  n_cnt;                    // channel
    logic            feed_valid, feed_ready, feed_take, blk_end;
    logic signed [MW-1:0]  mac, beat_sum;
    logic signed [P_W-1:0] prods [LANES];
    logic signed [T_W-1:0] t_next;

    assign feed_valid = full[rd_sel];
    assign blk_end    = (j_cnt == BP_LAST);
    assign feed_take  = feed_valid && feed_ready;

    for (genvar l = 0; l < LANES; l++) begin : g_lane
        logic signed [MANT_XW-1:0] mx;
        logic signed [MANT_WW-1:0] mw;
        logic        [SH_XW-1:0]   sx;
        logic        [SH_WW-1:0]   sw;
        /* verilator lint_off UNUSEDSIGNAL */  // the integer outputs: the lanes use mantissa and shift
        logic signed [MANT_XW+SHMAX_X-1:0] vx;
        logic signed [MANT_WW+SHMAX_W-1:0] vw;
        /* verilator lint_on UNUSEDSIGNAL */
        logic signed [PM_W-1:0]    pm;
        masec_mx_elem #(.ELEM(ELEM_X)) u_x (
            .code(xbuf[rd_sel][int'(k_cnt) * LANES + l]), .mant(mx), .shift(sx), .value(vx));
        masec_mx_elem #(.ELEM(ELEM_W)) u_w (
            .code(wmem[int'(n_cnt) * K + int'(k_cnt) * LANES + l]), .mant(mw), .shift(sw), .value(vw));
        assign pm        = PM_W'(mx) * PM_W'(mw);
        assign prods[l]  = P_W'(pm) <<< (SH_SUMW'(sx) + SH_SUMW'(sw));
    end

    always_comb begin
        beat_sum = mac;
        for (int l = 0; l < LANES; l++) beat_sum = beat_sum + MW'(prods[l]);
    end
    assign t_next = T_W'(sbuf[rd_sel][b_cnt]) + T_W'(wsmem[int'(n_cnt) * NB + int'(b_cnt)]) - (T_W'(T_OFF));

    logic                  blk_valid, blk_ready, blk_last;
    logic signed [MW-1:0]  blk_m;
    logic signed [T_W-1:0] blk_t;
    assign feed_ready = !blk_end || !blk_valid || blk_ready;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            full      <= '0;
            wr_sel    <= 1'b0;
            rd_sel    <= 1'b0;
            in_cnt    <= '0;
            in_j      <= '0;
            in_b      <= '0;
            k_cnt     <= '0;
            j_cnt     <= '0;
            b_cnt     <= '0;
            n_cnt     <= '0;
            mac       <= '0;
            blk_valid <= 1'b0;
        end else begin
            // Loading finishes only on a buffer that is not full, computing only on a full one:
            // the two updates of `full` below never hit the same buffer in one cycle.
            if (in_take) begin
                in_cnt <= (in_cnt == KB_LAST) ? '0 : in_cnt + 1'b1;
                in_j   <= (in_j == BP_LAST) ? '0 : in_j + 1'b1;
                if (in_j == BP_LAST) in_b <= (in_b == NB_LAST) ? '0 : in_b + 1'b1;
                if (in_cnt == KB_LAST) begin
                    full[wr_sel] <= 1'b1;
                    wr_sel       <= !wr_sel;
                end
            end
            if (blk_valid && blk_ready) blk_valid <= 1'b0;
            if (feed_take) begin
                k_cnt <= (k_cnt == KB_LAST) ? '0 : k_cnt + 1'b1;
                j_cnt <= blk_end ? '0 : j_cnt + 1'b1;
                if (blk_end) begin
                    mac       <= '0;
                    blk_valid <= 1'b1;
                    b_cnt     <= (b_cnt == NB_LAST) ? '0 : b_cnt + 1'b1;
                    if (b_cnt == NB_LAST) begin
                        n_cnt <= (n_cnt == N_LAST) ? '0 : n_cnt + 1'b1;
                        if (n_cnt == N_LAST) begin
                            full[rd_sel] <= 1'b0;
                            rd_sel       <= !rd_sel;
                        end
                    end
                end else begin
                    mac <= beat_sum;
                end
            end
        end
    end

    always_ff @(posedge clk) begin
        if (feed_take && blk_end) begin
            blk_m    <= beat_sum;
            blk_t    <= t_next;
            blk_last <= (b_cnt == NB_LAST);
        end
    end

    // ------------------------------------------------------------ stage 2: alignment
    // c = round_half_even(blk_m * 2^blk_t), clamped to +-2^ACC_BITS.  A left shift past
    // ACC_BITS + 1 saturates like ACC_BITS + 1 does (|m| >= 1); a right shift past MW + 1
    // gives 0 like MW + 1 does (|m| / 2^(MW+1) <= 1/4).
    logic signed [RW-1:0]   m_r, q, r_res;
    logic        [RW-1:0]   rem, half;
    logic        [RC_W-1:0] rc;
    logic        [TL_W-1:0] tl;
    logic signed [T_W-1:0]  neg_t;
    logic                   up;
    logic signed [LW-1:0]   wide;
    logic signed [C_W-1:0]  c_next, c_reg;
    logic                   c_valid, c_ready, c_last;

    always_comb begin
        // t < 0: floor(m / 2^rc) and the dropped bits decide the rounding
        neg_t = -blk_t;
        rc    = RC_W'((neg_t > TR_MAX) ? TR_MAX : neg_t);
        m_r   = RW'(blk_m);
        q     = m_r >>> rc;
        rem   = m_r & ~({RW{1'b1}} << rc);
        half  = {{(RW-1){1'b0}}, 1'b1} << (rc - 1'b1);
        up    = (ALIGN == "even") && ((rem > half) || ((rem == half) && q[0]));
        r_res = q + RW'({1'b0, up});
        // t >= 0: exact left shift
        tl    = TL_W'((blk_t > TL_MAX) ? TL_MAX : blk_t);
        wide  = blk_t[T_W-1] ? LW'(r_res) : LW'(blk_m) <<< tl;
        if (wide > C_MAX)      c_next = C_W'(C_MAX);
        else if (wide < C_MIN) c_next = C_W'(C_MIN);
        else                   c_next = C_W'(wide);
    end

    assign blk_ready = !c_valid || c_ready;
    always_ff @(posedge clk) begin
        if (!rst_n) c_valid <= 1'b0;
        else if (blk_ready) c_valid <= blk_valid;
    end
    always_ff @(posedge clk) begin
        if (blk_valid && blk_ready) begin
            c_reg  <= c_next;
            c_last <= blk_last;
        end
    end

    // ------------------------------------------------------------ stage 3: saturating accumulator
    logic signed [ACC_BITS-1:0] acc, acc_out, sat;
    logic signed [C_W-1:0]      sum;
    logic                       acc_valid, acc_ready;
    assign sum = C_W'(acc) + c_reg;
    always_comb begin
        if (sum > ACC_MAX)      sat = ACC_BITS'(ACC_MAX);
        else if (sum < ACC_MIN) sat = ACC_BITS'(ACC_MIN);
        else                    sat = ACC_BITS'(sum);
    end
    assign c_ready = !c_last || !acc_valid || acc_ready;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            acc       <= '0;
            acc_valid <= 1'b0;
        end else begin
            if (acc_valid && acc_ready) acc_valid <= 1'b0;
            if (c_valid && c_ready) begin
                if (c_last) begin
                    acc_out   <= sat;
                    acc_valid <= 1'b1;
                    acc       <= '0;
                end else begin
                    acc <= sat;
                end
            end
        end
    end

    // ------------------------------------------------------------ stage 4: requantization
    if (REQUANT) begin : g_requant
        logic [N_W-1:0] ch;                     // channel of acc_out
        always_ff @(posedge clk) begin
            if (!rst_n) ch <= '0;
            else if (acc_valid && acc_ready) ch <= (ch == N_LAST) ? '0 : ch + 1'b1;
        end
        masec_requant #(
            .LANES(1), .IN_W(ACC_BITS), .MULT_W(32), .SHIFT_W(8), .ZP_W(32), .OUT_W(OUT_W),
            .OUT_MIN(LO), .OUT_MAX(HI), .ROUNDING(ROUNDING)
        ) u_requant (
            .clk, .rst_n,
            .mult(mmem[ch]), .shift(smem[ch]), .zp(32'(ZP_OUT)),
            .in_valid(acc_valid), .in_ready(acc_ready), .in_data(acc_out),
            .out_valid, .out_ready, .out_data
        );
    end else begin : g_raw
        assign out_valid = acc_valid;
        assign acc_ready = out_ready;
        assign out_data  = OUT_W'(acc_out);
    end
endmodule
