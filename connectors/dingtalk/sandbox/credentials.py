"""The sandbox's own credentials. They exist nowhere else; production settings never use them."""

SANDBOX_CORP_ID = "ding5e2a9c7b31f4d086"
SANDBOX_APP_KEY = "dingsbxq7w3k9z2m5r8t"
SANDBOX_APP_SECRET = "sbx-Dt7Qw2Lm9Xc4Vb8Nz1Kp6Hs3Jf5Gr0Ty-AeUi2Oo4Pp6"
SANDBOX_AGENT_ID = 2_801_334_455
# Event subscription (developer console → 事件订阅): token and aes_key for driving a receiver.
SANDBOX_CALLBACK_TOKEN = "sbxDingCallbackToken"
SANDBOX_CALLBACK_AES_KEY = "ZGluZ3RhbGstc2FuZGJveC1hZXMta2V5LTMyYnl0ZXM"
# A second app of the same corp: its token must not redeem the first app's 免登 codes.
SANDBOX_OTHER_APP_KEY = "dingsbxotherapp4k8m2"
SANDBOX_OTHER_APP_SECRET = "sbx-0therDingApp-Wq3Ez7Rx1Tc5Yv9Ub2In4Om6"
