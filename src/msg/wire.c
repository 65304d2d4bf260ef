/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Frame headers and session records: packing, sealing with the AEAD (or, in
 * plain mode, a SipHash header MAC) and opening in place. The layout is in
 * msg-int.h. Nonces are the record counter, so a record replayed, dropped or
 * moved inside a connection fails its check, and a record from another
 * connection fails because every connection has its own keys.
 */
#include <assert.h>
#include <string.h>
#include <openssl/evp.h>

#include "msg/msg-int.h"
#include "base/banned.h"

_Static_assert(crypto_aead_aes256gcm_NPUBBYTES == 12, "nonce size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12, "nonce size");
_Static_assert(crypto_aead_aes256gcm_ABYTES == WIRE_TAG_SIZE, "tag size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == WIRE_TAG_SIZE, "tag size");
_Static_assert(crypto_shorthash_siphash24_BYTES == WIRE_HMAC_SIZE, "mac size");

void msg_wire_hdr_pack(const struct wire_hdr *h, uint8_t out[WIRE_HDR_SIZE])
{
	out[0] = h->kind;
	out[1] = h->flags;
	put_le16(out + 2, h->channel);
	put_le32(out + 4, h->type);
	put_le64(out + 8, h->seq);
	put_le64(out + 16, h->ack);
	put_le64(out + 24, h->stream);
}

int msg_wire_hdr_unpack(const uint8_t in[WIRE_HDR_SIZE], struct wire_hdr *ret)
{
	struct wire_hdr h = {
		.kind = in[0],
		.flags = in[1],
		.channel = get_le16(in + 2),
		.type = get_le32(in + 4),
		.seq = get_le64(in + 8),
		.ack = get_le64(in + 16),
		.stream = get_le64(in + 24),
	};
	bool sequenced = h.kind != WIRE_ACK && h.kind != WIRE_PING;

	if (h.kind == 0 || h.kind >= _WIRE_KIND_MAX || (h.flags & ~WIRE_F_MORE))
		return -EBADMSG;
	if (sequenced != (h.seq != 0) || (!sequenced && h.flags))
		return -EBADMSG;
	if (h.channel >= MSG_CHANNELS)
		return -EBADMSG;
	*ret = h;
	return 0;
}

int msg_wire_cipher_init(struct wire_cipher *c, bool encrypt, const uint8_t key[WIRE_KEY_SIZE])
{
	memset(c, 0, sizeof(*c));
	c->encrypt = encrypt;
	memcpy(c->key, key, WIRE_KEY_SIZE);
	if (encrypt && crypto_aead_aes256gcm_is_available()) {
		c->aes = EVP_CIPHER_CTX_new();
		if (!c->aes)
			return -ENOMEM;
		/* The key is expanded once; each record sets only its nonce. */
		if (EVP_CipherInit_ex(c->aes, EVP_aes_256_gcm(), NULL, key, NULL, 1) != 1) {
			msg_wire_cipher_wipe(c);
			return -EIO;
		}
		c->aes_ok = true;
	}
	return 0;
}

void msg_wire_cipher_wipe(struct wire_cipher *c)
{
	EVP_CIPHER_CTX_free(c->aes);
	sodium_memzero(c, sizeof(*c));
}

/* AES-256-GCM through OpenSSL: n bytes at in to out (may be equal), with the
 * length field as AD; enc 1 writes the tag to tag, enc 0 checks it. */
static int aes_gcm(struct wire_cipher *c, int enc, const uint8_t nonce[12], const uint8_t *ad,
		   const uint8_t *in, size_t n, uint8_t *out, uint8_t *tag)
{
	int len;

	if (EVP_CipherInit_ex(c->aes, NULL, NULL, NULL, nonce, enc) != 1 ||
	    EVP_CipherUpdate(c->aes, NULL, &len, ad, WIRE_LEN_SIZE) != 1 ||
	    (n && EVP_CipherUpdate(c->aes, out, &len, in, (int)n) != 1))
		return -EIO;
	if (!enc && EVP_CIPHER_CTX_ctrl(c->aes, EVP_CTRL_GCM_SET_TAG, WIRE_TAG_SIZE, tag) != 1)
		return -EIO;
	if (EVP_CipherFinal_ex(c->aes, out + n, &len) != 1)
		return -EBADMSG;
	if (enc && EVP_CIPHER_CTX_ctrl(c->aes, EVP_CTRL_GCM_GET_TAG, WIRE_TAG_SIZE, tag) != 1)
		return -EIO;
	return 0;
}

size_t msg_wire_overhead(const struct wire_cipher *c)
{
	return WIRE_LEN_SIZE + (c->encrypt ? WIRE_TAG_SIZE : WIRE_HMAC_SIZE);
}

static void make_nonce(uint64_t counter, uint8_t nonce[12])
{
	memset(nonce, 0, 4);
	put_le64(nonce + 4, counter);
}

/* SipHash-2-4 keyed with the first half of the direction key, over the
 * length field, the counter and the header. */
static void header_mac(const struct wire_cipher *c, const uint8_t len[WIRE_LEN_SIZE],
		       const uint8_t hdr[WIRE_HDR_SIZE], uint8_t mac[WIRE_HMAC_SIZE])
{
	uint8_t m[WIRE_LEN_SIZE + 8 + WIRE_HDR_SIZE];

	memcpy(m, len, WIRE_LEN_SIZE);
	put_le64(m + WIRE_LEN_SIZE, c->counter);
	memcpy(m + WIRE_LEN_SIZE + 8, hdr, WIRE_HDR_SIZE);
	crypto_shorthash_siphash24(mac, m, sizeof(m), c->key);
}

void msg_wire_seal_prefix(struct wire_cipher *c, const uint8_t *in, size_t n, uint8_t *out)
{
	assert(!c->encrypt && n >= WIRE_HDR_SIZE && n <= WIRE_MAX_LEN);
	put_le32(out, (uint32_t)(n + WIRE_HMAC_SIZE));
	header_mac(c, out, in, out + WIRE_LEN_SIZE);
	c->counter++;
}

int msg_wire_seal(struct wire_cipher *c, const uint8_t *in, size_t n, uint8_t *out)
{
	uint8_t nonce[12];

	assert(n >= WIRE_HDR_SIZE && n <= WIRE_MAX_LEN - WIRE_TAG_SIZE);
	if (!c->encrypt) {
		memmove(out + WIRE_PLAIN_BODY, in, n);
		msg_wire_seal_prefix(c, out + WIRE_PLAIN_BODY, n, out);
		return 0;
	}
	put_le32(out, (uint32_t)(n + WIRE_TAG_SIZE));
	make_nonce(c->counter++, nonce);
	if (c->aes_ok)
		return aes_gcm(c, 1, nonce, out, in, n, out + WIRE_LEN_SIZE,
			       out + WIRE_LEN_SIZE + n);
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(out + WIRE_LEN_SIZE,
							   out + WIRE_LEN_SIZE + n, NULL, in, n,
							   out, WIRE_LEN_SIZE, NULL, nonce, c->key);
	return 0;
}

int msg_wire_open(struct wire_cipher *c, uint8_t *rec, size_t size, uint8_t **ret_body,
	      size_t *ret_n)
{
	uint8_t nonce[12];
	size_t len, n;
	int r;

	if (size < WIRE_LEN_SIZE)
		return -EBADMSG;
	len = get_le32(rec);
	if (len != size - WIRE_LEN_SIZE || len > WIRE_MAX_LEN)
		return -EBADMSG;
	if (!c->encrypt) {
		uint8_t mac[WIRE_HMAC_SIZE];

		if (len < WIRE_HMAC_SIZE + WIRE_HDR_SIZE)
			return -EBADMSG;
		header_mac(c, rec, rec + WIRE_PLAIN_BODY, mac);
		if (sodium_memcmp(mac, rec + WIRE_LEN_SIZE, WIRE_HMAC_SIZE) != 0)
			return -EBADMSG;
		c->counter++;
		*ret_body = rec + WIRE_PLAIN_BODY;
		*ret_n = len - WIRE_HMAC_SIZE;
		return 0;
	}
	if (len < WIRE_TAG_SIZE + WIRE_HDR_SIZE)
		return -EBADMSG;
	n = len - WIRE_TAG_SIZE;
	make_nonce(c->counter, nonce);
	if (c->aes_ok)
		r = aes_gcm(c, 0, nonce, rec, rec + WIRE_LEN_SIZE, n, rec + WIRE_LEN_SIZE,
			    rec + WIRE_LEN_SIZE + n);
	else
		r = crypto_aead_chacha20poly1305_ietf_decrypt_detached(
			rec + WIRE_LEN_SIZE, NULL, rec + WIRE_LEN_SIZE, n, rec + WIRE_LEN_SIZE + n,
			rec, WIRE_LEN_SIZE, nonce, c->key);
	if (r != 0)
		return -EBADMSG;
	c->counter++;
	*ret_body = rec + WIRE_LEN_SIZE;
	*ret_n = n;
	return 0;
}
