/* tallow/messages.h — every core wire message: fixed ids 0..39 (the original Tallow enum order)
 * and their fields, in one X-macro table. Structs are generated as tallow_msg_<Name>, ids as
 * TALLOW_MSG_<Name>, descriptors as tallow_msgtype_<Name>. Ids and tags are append-only: a
 * retired one stays here as a comment and is never reused. */
#ifndef TALLOW_MESSAGES_H
#define TALLOW_MESSAGES_H

#include "msg.h"

/* The tables below are laid out by hand, one message per line where it fits: clang-format would
 * break them into a staircase. */
/* clang-format off */

/* M(id, Name) */
#define TALLOW_CORE_MESSAGES(M)                                                                    \
    M(0, VersionRequest) M(1, VersionResponse) M(2, VersionReject) M(3, RoomJoin)                  \
    M(4, RoomJoined) M(5, RoomLeave) M(6, PeerArrived) M(7, PeerDeparted) M(8, FileOffer)          \
    M(9, FileAccept) M(10, FileReject) M(11, Chunk) M(12, Ack) M(13, TransferComplete)             \
    M(14, TransferError) M(15, ManifestExchange) M(16, SyncDeleteList) M(17, Ping) M(18, Pong)     \
    M(19, HandshakeInit) M(20, HandshakeResponse) M(21, HandshakeKem) M(22, HandshakeComplete)     \
    M(23, ResumeInfo) M(24, HandshakeFailed) M(25, ChatText) M(26, TypingIndicator)                \
    M(27, ReadReceipt) M(28, ChatEnd) M(29, RoomJoinMulti) M(30, RoomJoinedMulti)                  \
    M(31, PeerJoinedRoom) M(32, PeerLeftRoom) M(33, Targeted) M(34, RoomPeerCount)                 \
    M(35, CandidateOffer) M(36, CandidatesDone) M(37, DirectConnected) M(38, DirectFailed)  \
    M(39, PathProbeDone)

/* Field tables: F(S, tag, name, KIND), S being the struct type, with KIND one of U64 I64 BOOL U32 BYTES STR. */
#define TALLOW_FIELDS_VersionRequest(F, S) F(S, 1, version, U32) F(S, 2, features, U64) F(S, 3, software, STR)
#define TALLOW_FIELDS_VersionResponse(F, S) F(S, 1, version, U32) F(S, 2, features, U64) F(S, 3, software, STR)
#define TALLOW_FIELDS_VersionReject(F, S) F(S, 1, version, U32) F(S, 2, reason, STR)
/* room: the opaque room id (a hash of the code's number only, never a word); capacity 0 means 2. */
/* creator: 1 from the side that made the code (the initiator): a room takes one, so two senders
 * who drew the same number are told at once instead of meeting as a "code mismatch".
 * resume_anchor (first join) / resume_proof (resume): the end of a hash chain and, at each
 * resume, the next element back (H^k(proof) == anchor, k <= 64, then proof is the anchor): an
 * observer of the plain link who saw the token and every earlier proof cannot resume the slot. */
/* slot: a failover join into a group room (capacity > 2, the room's real one) asks for the slot
 * it held on the room's previous relay (1-based), so that peer numbers stay the same from one relay
 * to the next; 0 or absent: the first free slot. A relay that honours it echoes it in RoomJoined. */
#define TALLOW_FIELDS_RoomJoin(F, S)                                                                  \
    F(S, 1, room, BYTES) F(S, 2, password, BYTES) F(S, 3, version, U32) F(S, 4, capacity, U32)                 \
    F(S, 5, resume_token, BYTES) F(S, 6, creator, U32) F(S, 7, resume_anchor, BYTES)                         \
    F(S, 8, resume_proof, BYTES) F(S, 9, slot, U32)
/* capacity: the room's (2 for a pair; 0 from relays before it was added). stun_port2: the
 * relay's second STUN port (UDP, same host), 0 or absent when it has none: the client asks both
 * to learn its NAT's mapping behaviour. */
/* slot: the RoomJoin's slot, echoed when the relay gave it (0 or absent: the join asked for none,
 * or the relay predates the field and numbered the joiner by arrival). */
#define TALLOW_FIELDS_RoomJoined(F, S)                                                                \
    F(S, 1, peers, U32) F(S, 2, peer_index, U32) F(S, 3, resume_token, BYTES) F(S, 4, capacity, U32)  \
    F(S, 5, stun_port2, U32) F(S, 6, slot, U32)
#define TALLOW_FIELDS_RoomLeave(F, S) F(S, 1, reason, STR)
#define TALLOW_FIELDS_PeerArrived(F, S) F(S, 1, peer_index, U32) F(S, 2, peers, U32)
#define TALLOW_FIELDS_PeerDeparted(F, S) F(S, 1, peer_index, U32) F(S, 2, reason, STR) F(S, 3, peers, U32)
/* kind: 0 files, 1 text. manifest: the transfer engine's encoding of the entries. A manifest
 * larger than one frame travels in parts: several FileOffers with the same transfer_id (and the
 * same kind, count, total_size), each holding the next slice of the manifest's bytes, all but
 * the last with more = 1; the receiver joins them before decoding (core/transfer/offer_parts.c). */
#define TALLOW_FIELDS_FileOffer(F, S)                                                                 \
    F(S, 1, transfer_id, U64) F(S, 2, kind, U32) F(S, 3, count, U64) F(S, 4, total_size, U64)                  \
    F(S, 5, manifest, BYTES) F(S, 6, more, BOOL)
/* resume: per file, the byte offset the receiver already holds verified (varints, in order); size + 1
 * skips the file (there whole, or refused). refused: the entries the receiver refused, as
 * (index, -error) varint pairs in ascending index order, so that the sender can tell them from files
 * already there (a refused empty file leaves no missing byte to notice). When long, in parts like
 * FileOffer's manifest (all but the last with more = 1): whole varints of resume first, then whole
 * pairs of refused, each pair naming an entry an earlier or the same part's resume covered. */
/* again: on the first part of an acceptance said again after a resync (its parts may have been
 * lost in flight): the sender drops what it had of the earlier one and takes this one whole. */
#define TALLOW_FIELDS_FileAccept(F, S)                                                                \
    F(S, 1, transfer_id, U64) F(S, 2, resume, BYTES) F(S, 3, refused, BYTES) F(S, 4, more, BOOL)     \
    F(S, 5, again, BOOL)
#define TALLOW_FIELDS_FileReject(F, S) F(S, 1, transfer_id, U64) F(S, 2, reason, STR)
/* last: final chunk of a file; hash: on the last chunk of a file whose receiver kept a prefix from
 * an earlier session (FileAccept resume offset > 0), and only then: BLAKE2b-256 of the sender's
 * bytes [0, that offset). Bytes sent in the session need none: the transfer's AEAD covers them. */
#define TALLOW_FIELDS_Chunk(F, S)                                                                     \
    F(S, 1, transfer_id, U64) F(S, 2, file_index, U64) F(S, 3, offset, U64) F(S, 4, data, BYTES)               \
    F(S, 5, last, BOOL) F(S, 6, hash, BYTES)
#define TALLOW_FIELDS_Ack(F, S) F(S, 1, transfer_id, U64) F(S, 2, bytes, U64) F(S, 3, file_index, U64)
#define TALLOW_FIELDS_TransferComplete(F, S) F(S, 1, transfer_id, U64) F(S, 2, files, U64) F(S, 3, bytes, U64)
#define TALLOW_FIELDS_TransferError(F, S)                                                             \
    F(S, 1, transfer_id, U64) F(S, 2, code, I64) F(S, 3, message, STR) F(S, 4, file_index, U64)
/* flags: 1 REQUEST (send me yours), 2 MORE (the manifest continues in the next
 * ManifestExchange: slices of its bytes, joined before decoding; lua/tallow/folder.lua). */
#define TALLOW_FIELDS_ManifestExchange(F, S)                                                          \
    F(S, 1, transfer_id, U64) F(S, 2, manifest, BYTES) F(S, 3, flags, U32)
/* paths: NUL-separated; a long list travels as several messages of whole paths, all but the
 * last with more = 1 (each can be applied as it comes). */
#define TALLOW_FIELDS_SyncDeleteList(F, S) F(S, 1, transfer_id, U64) F(S, 2, paths, BYTES) F(S, 3, more, BOOL)
#define TALLOW_FIELDS_Ping(F, S) F(S, 1, seq, U64) F(S, 2, time, U64)
#define TALLOW_FIELDS_Pong(F, S) F(S, 1, seq, U64) F(S, 2, time, U64)
/* pake: the CPace share; nonce: 32 random bytes bound into the session key. */
#define TALLOW_FIELDS_HandshakeInit(F, S)                                                             \
    F(S, 1, version, U32) F(S, 2, nonce, BYTES) F(S, 3, pake, BYTES) F(S, 4, features, U64)
#define TALLOW_FIELDS_HandshakeResponse(F, S)                                                         \
    F(S, 1, version, U32) F(S, 2, nonce, BYTES) F(S, 3, pake, BYTES) F(S, 4, features, U64)                    \
    F(S, 5, confirm, BYTES)
#define TALLOW_FIELDS_HandshakeKem(F, S) F(S, 1, kem, BYTES)
#define TALLOW_FIELDS_HandshakeComplete(F, S) F(S, 1, confirm, BYTES)
#define TALLOW_FIELDS_ResumeInfo(F, S)                                                                \
    F(S, 1, transfer_id, U64) F(S, 2, file_index, U64) F(S, 3, offset, U64) F(S, 4, hash, BYTES)
#define TALLOW_FIELDS_HandshakeFailed(F, S) F(S, 1, reason, STR) F(S, 2, code, I64)
#define TALLOW_FIELDS_ChatText(F, S) F(S, 1, seq, U64) F(S, 2, text, STR) F(S, 3, from, U32)
#define TALLOW_FIELDS_TypingIndicator(F, S) F(S, 1, typing, BOOL) F(S, 2, from, U32)
#define TALLOW_FIELDS_ReadReceipt(F, S) F(S, 1, seq, U64) F(S, 2, from, U32)
#define TALLOW_FIELDS_ChatEnd(F, S) F(S, 1, reason, STR) F(S, 2, from, U32)
#define TALLOW_FIELDS_RoomJoinMulti(F, S)                                                             \
    F(S, 1, room, BYTES) F(S, 2, password, BYTES) F(S, 3, version, U32) F(S, 4, capacity, U32)
#define TALLOW_FIELDS_RoomJoinedMulti(F, S) F(S, 1, peer_index, U32) F(S, 2, peers, U32) F(S, 3, capacity, U32)
#define TALLOW_FIELDS_PeerJoinedRoom(F, S) F(S, 1, peer_index, U32) F(S, 2, peers, U32)
#define TALLOW_FIELDS_PeerLeftRoom(F, S) F(S, 1, peer_index, U32) F(S, 2, peers, U32)
/* to: destination peer index (relay rewrites from); payload: an opaque peer frame. */
#define TALLOW_FIELDS_Targeted(F, S) F(S, 1, from, U32) F(S, 2, to, U32) F(S, 3, payload, BYTES)
#define TALLOW_FIELDS_RoomPeerCount(F, S) F(S, 1, peers, U32) F(S, 2, capacity, U32)
/* kind: 0 host, 1 srflx, 2 prflx, 3 relayed; addr: tallow_sockaddr_encode() form. */
#define TALLOW_FIELDS_CandidateOffer(F, S)                                                            \
    F(S, 1, kind, U32) F(S, 2, priority, U32) F(S, 3, addr, BYTES) F(S, 4, foundation, STR)
#define TALLOW_FIELDS_CandidatesDone(F, S) F(S, 1, count, U32)
#define TALLOW_FIELDS_DirectConnected(F, S) F(S, 1, addr, BYTES) F(S, 2, rtt_us, U64)
#define TALLOW_FIELDS_DirectFailed(F, S) F(S, 1, reason, STR)
/* The answer to a relay probe (session frames of kind 4 on the relay, sent by a side whose
 * direct path is saturated, to learn whether the relay would be faster): the probe's id and the
 * filler bytes that arrived. Only between peers that both set TALLOW__FEAT_PROBE. */
#define TALLOW_FIELDS_PathProbeDone(F, S) F(S, 1, id, U64) F(S, 2, bytes, U64)

#define TALLOW__CTYPE_U64 uint64_t
#define TALLOW__CTYPE_I64 int64_t
#define TALLOW__CTYPE_BOOL uint8_t
#define TALLOW__CTYPE_U32 uint32_t
#define TALLOW__CTYPE_BYTES tallow_bytes
#define TALLOW__CTYPE_STR tallow_bytes

#define TALLOW__STRUCT_FIELD(S, tag, name, kind) TALLOW__CTYPE_##kind name;
#define TALLOW__STRUCT(id, Name)                                                                   \
    typedef struct tallow_msg_##Name {                                                             \
        TALLOW_FIELDS_##Name(TALLOW__STRUCT_FIELD, _)                                                 \
    } tallow_msg_##Name;
TALLOW_CORE_MESSAGES(TALLOW__STRUCT)
#undef TALLOW__STRUCT

enum tallow_msg_id {
#define TALLOW__ID(id, Name) TALLOW_MSG_##Name = (id),
    TALLOW_CORE_MESSAGES(TALLOW__ID)
#undef TALLOW__ID
    TALLOW_MSG_CORE_COUNT = 40,
    TALLOW_MSG_PLUGIN_BASE = 0x8000,
};

#define TALLOW__DECL(id, Name) TALLOW_API extern const tallow_msg_type tallow_msgtype_##Name;
TALLOW_CORE_MESSAGES(TALLOW__DECL)
#undef TALLOW__DECL

/* Union large enough for any core message (for decode buffers). */
typedef union tallow_msg_any {
#define TALLOW__UNION(id, Name) tallow_msg_##Name Name;
    TALLOW_CORE_MESSAGES(TALLOW__UNION)
#undef TALLOW__UNION
} tallow_msg_any;

/* clang-format on */

#endif
