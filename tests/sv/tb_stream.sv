// Stream source and sink for the component testbenches (tests/test_sv_components.py).
//
// tb_source reads one hex word per line from FILE and offers them in order on a
// valid/ready stream, idling a random STALL_PCT percent of the cycles (valid is
// never withdrawn once offered).  tb_sink writes every accepted word to FILE,
// one hex word per line, and drops ready a random STALL_PCT percent of cycles;
// it stops the simulation if a component withdraws or changes an output word
// that was offered but not yet taken (the valid/ready rule).  At the end it
// prints how many words it took and in which cycles the first and last came,
// so tests can check throughput.
module tb_source #(
    parameter int    W         = 8,
    parameter string FILE      = "in.hex",
    parameter int    STALL_PCT = 30
) (
    input  logic         clk,
    input  logic         rst_n,
    output logic         valid,
    input  logic         ready,
    output logic [W-1:0] data,
    output logic         done
);
    logic [W-1:0] words[$];
    int           idx;

    initial begin
        int fd, rc;
        logic [W-1:0] w;
        fd = $fopen(FILE, "r");
        if (fd == 0) $fatal(1, "tb_source: cannot open %s", FILE);
        while (!$feof(fd)) begin
            rc = $fscanf(fd, "%h\n", w);
            if (rc == 1) words.push_back(w);
        end
        $fclose(fd);
    end

    assign done = (idx == words.size()) && !valid;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            valid <= 1'b0;
            idx   <= 0;
        end else if (!valid || ready) begin
            if (idx < words.size() && $urandom_range(99) >= STALL_PCT) begin
                valid <= 1'b1;
                data  <= words[idx];
                idx   <= idx + 1;
            end else begin
                valid <= 1'b0;
            end
        end
    end
endmodule

module tb_sink #(
    parameter int    W         = 8,
    parameter string FILE      = "out.hex",
    parameter int    STALL_PCT = 30
) (
    input  logic         clk,
    input  logic         rst_n,
    input  logic         valid,
    output logic         ready,
    input  logic [W-1:0] data
);
    int           fd, beats, cycle, first, last;
    logic         held;
    logic [W-1:0] held_data;
    initial begin
        fd = $fopen(FILE, "w");
        if (fd == 0) $fatal(1, "tb_sink: cannot open %s", FILE);
    end

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            ready <= 1'b0;
            held  <= 1'b0;
            beats <= 0;
            cycle <= 0;
        end else begin
            cycle <= cycle + 1;
            if (valid && ready) begin
                if (beats == 0) first <= cycle;
                last  <= cycle;
                beats <= beats + 1;
            end
            if (held && (!valid || data != held_data))
                $fatal(1, "tb_sink %s: output withdrawn or changed while stalled", FILE);
            if (valid && ready) $fwrite(fd, "%h\n", data);
            held      <= valid && !ready;
            held_data <= data;
            ready     <= ($urandom_range(99) >= STALL_PCT);
        end
    end

    final begin
        $display("tb_sink %s: %0d beats in cycles %0d..%0d", FILE, beats, first, last);
        $fclose(fd);
    end
endmodule
