//! A market-data FIX 4.4 engine: framing (`frame`), encoding (`encode`), decoding straight
//! into ticks (`decode`), the FIX 4.4 data dictionary and message validation (`dictionary`),
//! the session layer for both sides (`session`), the initiator gateway that feeds a recorder
//! (`gateway`) and the acceptor simulator (`sim`).
//!
//! Scope: the messages a market-data session needs — Logon, Heartbeat, TestRequest,
//! ResendRequest, Reject, SequenceReset, Logout, MarketDataRequest (V), its reject (Y),
//! snapshots (W) and incrementals (X). Other application messages are sequenced and answered
//! with a BusinessMessageReject (35=j, unsupported message type).

pub mod decode;
pub mod dictionary;
pub mod encode;
pub mod frame;
pub mod gateway;
pub mod session;
pub mod sim;

/// The only protocol version spoken.
pub const BEGIN_STRING: &str = "FIX.4.4";

/// Tag numbers used by this engine.
pub mod tags {
    pub const BEGIN_SEQ_NO: u32 = 7;
    pub const CHECK_SUM: u32 = 10;
    pub const END_SEQ_NO: u32 = 16;
    pub const MSG_SEQ_NUM: u32 = 34;
    pub const MSG_TYPE: u32 = 35;
    pub const NEW_SEQ_NO: u32 = 36;
    pub const POSS_DUP_FLAG: u32 = 43;
    pub const REF_SEQ_NUM: u32 = 45;
    pub const SENDER_COMP_ID: u32 = 49;
    pub const SENDING_TIME: u32 = 52;
    pub const SYMBOL: u32 = 55;
    pub const TARGET_COMP_ID: u32 = 56;
    pub const TEXT: u32 = 58;
    pub const ENCRYPT_METHOD: u32 = 98;
    pub const HEART_BT_INT: u32 = 108;
    pub const TEST_REQ_ID: u32 = 112;
    pub const ORIG_SENDING_TIME: u32 = 122;
    pub const GAP_FILL_FLAG: u32 = 123;
    pub const NO_RELATED_SYM: u32 = 146;
    pub const RESET_SEQ_NUM_FLAG: u32 = 141;
    pub const MD_REQ_ID: u32 = 262;
    pub const SUBSCRIPTION_REQUEST_TYPE: u32 = 263;
    pub const MARKET_DEPTH: u32 = 264;
    pub const MD_UPDATE_TYPE: u32 = 265;
    pub const NO_MD_ENTRY_TYPES: u32 = 267;
    pub const NO_MD_ENTRIES: u32 = 268;
    pub const MD_ENTRY_TYPE: u32 = 269;
    pub const MD_ENTRY_PX: u32 = 270;
    pub const MD_ENTRY_SIZE: u32 = 271;
    pub const MD_UPDATE_ACTION: u32 = 279;
    pub const MD_REQ_REJ_REASON: u32 = 281;
    pub const ON_BEHALF_OF_COMP_ID: u32 = 115;
    pub const ON_BEHALF_OF_SUB_ID: u32 = 116;
    pub const DELIVER_TO_COMP_ID: u32 = 128;
    pub const DELIVER_TO_SUB_ID: u32 = 129;
    pub const ON_BEHALF_OF_LOCATION_ID: u32 = 144;
    pub const DELIVER_TO_LOCATION_ID: u32 = 145;
    pub const REF_TAG_ID: u32 = 371;
    pub const REF_MSG_TYPE: u32 = 372;
    pub const SESSION_REJECT_REASON: u32 = 373;
    pub const BUSINESS_REJECT_REASON: u32 = 380;
    pub const USERNAME: u32 = 553;
    pub const PASSWORD: u32 = 554;
}
