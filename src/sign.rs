//! STUB (issue 4): SDK-HMAC-SHA256 request signing.
