"""The sandbox's own credentials. They exist nowhere else; production settings never use them."""

SANDBOX_CORP_ID = "wwe7b5c3a1d9f24680"
SANDBOX_SECRET = "sbx-3xQm9Tz4Vd8LpR2cWn6YhK1JfB5gUe7Ao0Is"
SANDBOX_AGENT_ID = 1000002
# Callback settings (admin console → app → 接收消息) for driving a callback receiver.
SANDBOX_CALLBACK_TOKEN = "sbxCallbackToken"
SANDBOX_ENCODING_AES_KEY = "c2FuZGJveC1lbmNvZGluZy1hZXMta2V5LTMyYnl0ZSE"
# A second self-built app of the same corp: its token must not redeem the first app's sign-in codes.
SANDBOX_OTHER_SECRET = "sbx-0therApp-Kq2Wm8Rt5Yz3Lp9Xc7Vb1Nj4Hg6F"
SANDBOX_OTHER_AGENT_ID = 1000003
