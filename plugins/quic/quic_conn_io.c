/* quic_conn_io.c — the QUIC connection's packets: the send ring kept until acknowledged, bursts
 * of equal-size datagrams under congestion control and pacing, received datagrams, timers. */
#include "quic_conn_internal.h"

uint64_t quic_ring_free(const quic_conn *c)
{
    return c->ring_size - (c->end - c->acked);
}

static size_t quic_ring_vecs(const quic_conn *c, ngtcp2_vec v[2])
{
    uint64_t n = c->end - c->sent;
    size_t off = (size_t)(c->sent & (c->ring_size - 1));
    size_t first = n < c->ring_size - off ? (size_t)n : (size_t)(c->ring_size - off);
    v[0].base = c->ring + off;
    v[0].len = first;
    if (n == first) return 1;
    v[1].base = c->ring;
    v[1].len = (size_t)n - first;
    return 2;
}

void quic_ring_put(quic_conn *c, const uint8_t *data, size_t n)
{
    size_t off = (size_t)(c->end & (c->ring_size - 1));
    size_t first = n < c->ring_size - off ? n : (size_t)(c->ring_size - off);
    memcpy(c->ring + off, data, first);
    memcpy(c->ring, data + first, n - first);
    c->end += n;
}

void quic_send(quic_conn *c, const ngtcp2_addr *to, const uint8_t *data, size_t len, size_t segsz)
{
    const struct sockaddr *sa = to && to->addrlen ? to->addr : (const struct sockaddr *)&c->remote;
    socklen_t salen = to && to->addrlen ? to->addrlen : c->rlen;
    /* A failed send is a lost packet: QUIC recovers. */
    uint64_t count = segsz ? (len + segsz - 1) / segsz : 1;
    int n = c->cbs.send(c->ud, sa, salen, data, len, segsz);
    c->cnt.tx_calls++;
    c->cnt.tx_dgrams += count;
    c->cnt.tx_bytes += len;
    if (n >= 0 && (uint64_t)n < count)
        c->cnt.tx_failed += count - (uint64_t)n;
    else if (n < 0)
        c->cnt.tx_failed += count;
}

int quic_conn_recv(quic_conn *c, const struct sockaddr *from, socklen_t fromlen, const uint8_t *pkt,
                   size_t len, uint64_t now_ns)
{
    if (c->closed) {
        /* In the closing period, answer the peer's packets with our CONNECTION_CLOSE. */
        if (c->close_len && c->close_resends < QUIC_CLOSE_RESENDS) {
            c->close_resends++;
            quic_send(c, NULL, c->close_pkt, c->close_len, c->close_len);
        }
        return quic_dispatch(c);
    }
    c->cnt.rx_dgrams++;
    c->cnt.rx_bytes += len;
    if (!c->conn && (!c->is_server || quic_server_accept(c, from, fromlen, pkt, len, now_ns) != 0))
        return 0;
    ngtcp2_path path = {
        {(struct sockaddr *)&c->local, c->llen}, {(struct sockaddr *)from, fromlen}, NULL};
    ngtcp2_pkt_info pi = {0};
    int rv = ngtcp2_conn_read_pkt(c->conn, &path, &pi, pkt, len, now_ns);
    if (rv != 0 && rv != NGTCP2_ERR_DISCARD_PKT) quic_close(c, rv, quic_map_liberr(c, rv), now_ns);
    return quic_dispatch(c);
}

size_t quic_conn_room(quic_conn *c)
{
    return c->closed || c->shutdown ? 0 : (size_t)quic_ring_free(c);
}

void quic_conn_want_writable(quic_conn *c)
{
    if (!c->closed && !c->shutdown) c->want_writable = 1;
}

size_t quic_conn_write(quic_conn *c, const uint8_t *data, size_t len)
{
    if (c->closed || c->shutdown) return 0;
    uint64_t room = quic_ring_free(c);
    size_t n = len < room ? len : (size_t)room;
    quic_ring_put(c, data, n);
    if (n < len) {
        c->want_writable = 1;
        c->cnt.ring_full++;
    }
    return n;
}

/* Large datagrams that no acknowledgement has vouched for yet while timeouts pile up: the path
 * drops them (a middlebox with a smaller MTU). Back to QUIC_MAX_PKT for good; ngtcp2 resends
 * their frames in the smaller packets. */
static void quic_check_blackhole(quic_conn *c, uint64_t now)
{
    if (!c->big || c->big_proven || !c->big_probe_end) return;
    if (c->acked >= c->big_probe_end) {
        c->big_proven = 1;
        return;
    }
    ngtcp2_conn_stat st;
    ngtcp2_conn_get_conn_stat(c->conn, &st);
    if (st.pto_count >= QUIC_BIG_BLACKHOLE_PTOS && now - c->big_probe_ts >= QUIC_BIG_BLACKHOLE_NS)
        c->big = 0;
}

/* Room offered for one packet. With shaping (the default), ngtcp2 sizes ordinary packets to the
 * validated path MTU itself and the room must also fit its PMTUD probes (up to QUIC_MAX_PKT), or
 * the path never grows beyond 1200. With large datagrams the room is the size. */
size_t quic_pkt_room(const quic_conn *c)
{
    if (!c->big) return QUIC_MAX_PKT;
    return c->hs_confirmed ? c->big : QUIC_MIN_PKT;
}

/* Why a burst ended with nothing more written (the counters), and congestion events. */
static void quic_count_stop(quic_conn *c, int blocked, size_t pmax)
{
    ngtcp2_conn_stat st;
    ngtcp2_conn_get_conn_stat(c->conn, &st);
    if (st.congestion_recovery_start_ts != c->last_recovery_ts &&
        st.congestion_recovery_start_ts != UINT64_MAX && st.congestion_recovery_start_ts != 0) {
        c->last_recovery_ts = st.congestion_recovery_start_ts;
        c->cnt.recoveries++;
    }
    if (!c->hs_done || c->stream_id < 0 || c->sent >= c->end) return; /* nothing to send */
    if (blocked)
        c->cnt.fc_stops++;
    else if (st.bytes_in_flight + pmax > st.cwnd)
        c->cnt.cwnd_stops++;
    else
        c->cnt.pace_stops++;
}

/* One burst: packets of up to the path MTU written back to back, handed to cbs->send in runs of
 * equal size. Stops when ngtcp2 has nothing more to send now (congestion, pacing, flow control)
 * or after one send quantum; returns 1 in that last case. */
static int quic_write_burst(quic_conn *c, uint64_t now)
{
    ngtcp2_path_storage ps;
    ngtcp2_pkt_info pi;
    quic_check_blackhole(c, now);
    size_t pmax = quic_pkt_room(c);
    size_t unit = c->path_udp > QUIC_ETH_PKT
                      ? pmax /* sizes are ours */
                      : ngtcp2_conn_get_path_max_tx_udp_payload_size(c->conn);
    size_t maxpkts = ngtcp2_conn_get_send_quantum(c->conn) / unit;
    if (maxpkts < 1) maxpkts = 1;
    if (maxpkts > QUIC_BATCH) maxpkts = QUIC_BATCH;
    size_t total = 0, segsz = 0, npkts = 0, sent_pkts = 0;
    int blocked = 0, quantum = 0, pkt_data = 0;
    ngtcp2_path_storage_zero(&ps);
    for (;;) {
        ngtcp2_vec v[2];
        size_t nv = 0;
        int64_t sid = -1;
        ngtcp2_ssize nd = -1;
        if (!blocked && c->stream_id >= 0 && c->hs_done && c->sent < c->end) {
            nv = quic_ring_vecs(c, v);
            sid = c->stream_id;
        }
        ngtcp2_ssize n =
            ngtcp2_conn_writev_stream(c->conn, &ps.path, &pi, c->txbuf + total, pmax, &nd,
                                      NGTCP2_WRITE_STREAM_FLAG_MORE, sid, nv ? v : NULL, nv, now);
        if (nd > 0) {
            pkt_data = 1;
            c->sent += (uint64_t)nd;
            if (n > QUIC_MAX_PKT && !c->big_probe_end) {
                c->big_probe_end = c->sent;
                c->big_probe_ts = now;
            }
        }
        if (n == NGTCP2_ERR_WRITE_MORE) continue;
        if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
            n == NGTCP2_ERR_STREAM_NOT_FOUND) {
            blocked = 1;
            continue;
        }
        if (n < 0) {
            if (total) quic_send(c, &ps.path.remote, c->txbuf, total, segsz);
            quic_close(c, (int)n, quic_map_liberr(c, (int)n), now);
            return 0;
        }
        if (n == 0) {
            quic_count_stop(c, blocked, pmax);
            break;
        }
        if (!pkt_data) c->cnt.tx_nodata++;
        pkt_data = 0;
        if (npkts && (size_t)n > segsz) { /* larger than the run (a PMTUD probe): new run */
            quic_send(c, &ps.path.remote, c->txbuf, total, segsz);
            memmove(c->txbuf, c->txbuf + total, (size_t)n);
            total = npkts = 0;
        }
        if (!npkts) segsz = (size_t)n;
        total += (size_t)n;
        npkts++;
        sent_pkts++;
        if ((size_t)n < segsz || npkts == QUIC_BATCH || total + pmax > QUIC_BATCH_BYTES ||
            sent_pkts >= maxpkts) {
            quic_send(c, &ps.path.remote, c->txbuf, total, segsz);
            total = npkts = 0;
            if (sent_pkts >= maxpkts) {
                quantum = 1;
                break;
            }
        }
    }
    if (total) quic_send(c, &ps.path.remote, c->txbuf, total, segsz);
    /* ngtcp2 0.12 schedules the next quantum one pacing interval after the time given here, so
     * every wakeup that comes late (millisecond timers, a busy machine) is rate lost for good:
     * at 500 Mbit/s a 64 KiB quantum is due every ~1 ms and half the rate went. On internet
     * paths credit the lateness, at most QUIC_PACE_CREDIT, as ngtcp2 1.x does. */
    uint64_t txts = now;
    if (!c->big && c->pace_due && now > c->pace_due)
        txts = now - (now - c->pace_due < QUIC_PACE_CREDIT ? now - c->pace_due : QUIC_PACE_CREDIT);
    ngtcp2_conn_update_pkt_tx_time(c->conn, txts);
    c->pace_due = quantum ? ngtcp2_conn_get_expiry(c->conn) : 0;
    return quantum;
}

/* Bursts while ngtcp2 allows: its pacing lets the next quantum go at once when the gap would be
 * under a millisecond (a fast local path), else the next burst writes nothing. One quantum per
 * loop round left the loop's own cost on every 64 KiB. */
void quic_write(quic_conn *c, uint64_t now)
{
    for (int i = 0; i < QUIC_FLUSH_BURSTS && !c->closed && quic_write_burst(c, now); i++)
        ;
}

int quic_conn_flush(quic_conn *c, uint64_t now_ns)
{
    if (!c->closed && c->conn) quic_write(c, now_ns); /* first: it carries our last ACKs */
    if (!c->closed && c->shutdown && c->acked == c->end) quic_close(c, 0, 0, now_ns);
    return quic_dispatch(c);
}

uint64_t quic_conn_expiry(quic_conn *c)
{
    if (c->closed || !c->conn) return UINT64_MAX;
    return ngtcp2_conn_get_expiry(c->conn);
}

int quic_conn_on_expiry(quic_conn *c, uint64_t now_ns)
{
    if (!c->closed && c->conn) {
        ngtcp2_conn_stat st;
        ngtcp2_conn_get_conn_stat(c->conn, &st);
        if (st.loss_detection_timer <= now_ns) c->cnt.loss_timer++;
        int rv = ngtcp2_conn_handle_expiry(c->conn, now_ns);
        if (rv != 0) quic_close(c, rv, quic_map_liberr(c, rv), now_ns);
    }
    return quic_conn_flush(c, now_ns);
}
