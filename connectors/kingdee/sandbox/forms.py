"""Form metadata of the emulated K/3 Cloud forms: field keys, types, entities, references.

K/3 Cloud describes every business object ("form", ``FormId``) by metadata: header fields,
sub-headers (one-to-one child tables such as ``FSaleOrderFinance``), entry entities (one-to-many
lines such as ``FSaleOrderEntry``) and references to base data, which WebAPI callers address
by number (``{"FNumber": "C001"}``) and queries address with dotted keys
(``FCustId.FNumber``). Sources for the keys: reference ``erp-apis.md`` §1.5 [COMM] unless a
field's comment says otherwise.

Facts used from outside the reference file (found with the ``search`` tool, community code):

- ``BD_Customer`` salesperson is ``FSELLER`` and the address/contact entry is
  ``FT_BD_CUSTCONTACT`` with ``FNUMBER1``, ``FNAME1``, ``FADDRESS1``, ``FMOBILE`` — several
  independent customer-save scripts built on the official Python SDK.
- ``AR_receivable`` header carries written-off / not-written-off amounts; the table
  ``T_AR_RECEIVABLE`` has columns ``FWRITTENOFFAMOUNTFOR`` and ``FNOTWRITTENOFFAMOUNTFOR``
  (a public SqlSugar entity of that table). That the WebAPI *field keys* equal those column
  names is a guess.

Everything marked "guess" in this module is not confirmed by a source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FieldType = Literal["text", "datetime", "decimal", "int", "bool", "ref", "status", "pk"]

DOCUMENT_STATUSES = ("Z", "A", "B", "C", "D")  # 暂存 创建 审核中 已审核 重新审核 (§1.4)


@dataclass(frozen=True)
class FieldDef:
    """One field of a form.

    ``entity`` is None for header fields, the sub-header key for sub-header fields (stored
    flat with the header, nested under that key in a Save model) or the entry entity key.
    ``readonly`` fields are maintained by the server and ignored in Save models.
    """

    key: str
    type: FieldType
    label: str
    entity: str | None = None
    ref_form: str | None = None
    required: bool = False
    readonly: bool = False


@dataclass(frozen=True)
class EntityDef:
    """An entry entity (one-to-many lines) with its primary key field name."""

    key: str
    pk: str
    label: str


@dataclass
class FormDef:
    """Metadata of one form; lookups by key are case-insensitive like the real server's."""

    form_id: str
    label: str
    pk: str
    number_key: str
    number_prefix: str
    number_width: int
    fields: tuple[FieldDef, ...]
    entities: tuple[EntityDef, ...] = ()
    subheaders: tuple[str, ...] = ()
    is_base_data: bool = False
    name_key: str | None = "FName"
    _by_lower: dict[str, FieldDef] = field(default_factory=dict, repr=False)
    _entities_by_lower: dict[str, EntityDef] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_lower = {f.key.lower(): f for f in self.fields}
        self._entities_by_lower = {e.key.lower(): e for e in self.entities}

    def field(self, key: str) -> FieldDef | None:
        """The field with this key (any case), or None."""
        return self._by_lower.get(key.lower())

    def entity(self, key: str) -> EntityDef | None:
        """The entry entity with this key (any case), or None."""
        return self._entities_by_lower.get(key.lower())

    def header_fields(self) -> list[FieldDef]:
        """Fields stored on the header (including flattened sub-header fields)."""
        return [f for f in self.fields if f.entity is None or f.entity in self.subheaders]

    def entry_fields(self, entity: str) -> list[FieldDef]:
        """Fields of one entry entity (without its primary key)."""
        return [f for f in self.fields if f.entity == entity and f.type != "pk"]


def _base_data(form_id: str, label: str, pk: str, prefix: str, *extra: FieldDef) -> FormDef:
    """A small base-data form (currency, material, unit...) with number, name and status."""
    return FormDef(
        form_id=form_id, label=label, pk=pk, number_key="FNumber", number_prefix=prefix, number_width=4,
        fields=(
            FieldDef(pk, "pk", "内码", readonly=True),
            FieldDef("FNumber", "text", "编码"),
            FieldDef("FName", "text", "名称", required=True),
            *extra,
            FieldDef("FDocumentStatus", "status", "数据状态", readonly=True),
            FieldDef("FForbidStatus", "text", "禁用状态"),
            FieldDef("FCreateDate", "datetime", "创建日期", readonly=True),
            FieldDef("FModifyDate", "datetime", "修改日期", readonly=True),
        ),
        is_base_data=True,
    )


# Base data the business forms reference. Form ids BD_Currency, BD_MATERIAL, BD_UNIT and
# ORG_Organizations are common in community code; BD_Saler, BD_CustomerGroup, BD_RateType and
# BOS_BillType are guesses at the ids of salesperson, customer group, rate type and bill type.
CURRENCY = _base_data("BD_Currency", "币别", "FCURRENCYID", "PRE", FieldDef("FCODE", "text", "货币代码"))
MATERIAL = _base_data(
    "BD_MATERIAL", "物料", "FMATERIALID", "WL",
    FieldDef("FSpecification", "text", "规格型号"),
    FieldDef("FBaseUnitId", "ref", "基本单位", ref_form="BD_UNIT"),
)
UNIT = _base_data("BD_UNIT", "计量单位", "FUNITID", "UNIT")
SALER = _base_data("BD_Saler", "销售员", "FID", "SP")
ORGANIZATION = _base_data("ORG_Organizations", "组织机构", "FORGID", "ORG")
CUSTOMER_GROUP = _base_data("BD_CustomerGroup", "客户分组", "FID", "CG")
RATE_TYPE = _base_data("BD_RateType", "汇率类型", "FRATETYPEID", "HLTX")
BILL_TYPE = _base_data("BOS_BillType", "单据类型", "FBILLTYPEID", "BT")

CUSTOMER = FormDef(
    form_id="BD_Customer", label="客户", pk="FCUSTID", number_key="FNumber", number_prefix="CUST",
    number_width=5, is_base_data=True,
    fields=(
        FieldDef("FCUSTID", "pk", "客户内码", readonly=True),
        FieldDef("FNumber", "text", "客户编码"),
        FieldDef("FName", "text", "客户名称", required=True),
        FieldDef("FShortName", "text", "简称"),
        FieldDef("FCreateOrgId", "ref", "创建组织", ref_form="ORG_Organizations"),
        FieldDef("FUseOrgId", "ref", "使用组织", ref_form="ORG_Organizations"),
        FieldDef("FSOCIALCRECODE", "text", "统一社会信用代码"),
        FieldDef("FTAXREGISTERCODE", "text", "纳税登记号"),
        FieldDef("FTEL", "text", "联系电话"),
        FieldDef("FADDRESS", "text", "通讯地址"),
        FieldDef("FSELLER", "ref", "销售员", ref_form="BD_Saler"),
        FieldDef("FGroup", "ref", "客户分组", ref_form="BD_CustomerGroup"),
        FieldDef("FTRADINGCURRID", "ref", "结算币别", ref_form="BD_Currency"),
        FieldDef("FISCREDITCHECK", "bool", "启用信用管理"),
        FieldDef("FDocumentStatus", "status", "数据状态", readonly=True),
        FieldDef("FForbidStatus", "text", "禁用状态"),
        FieldDef("FCreateDate", "datetime", "创建日期", readonly=True),
        FieldDef("FModifyDate", "datetime", "最后修改日期", readonly=True),
        FieldDef("FENTRYID", "pk", "分录内码", entity="FT_BD_CUSTCONTACT", readonly=True),
        FieldDef("FNUMBER1", "text", "地址编码", entity="FT_BD_CUSTCONTACT"),
        FieldDef("FNAME1", "text", "联系人", entity="FT_BD_CUSTCONTACT"),
        FieldDef("FADDRESS1", "text", "详细地址", entity="FT_BD_CUSTCONTACT"),
        FieldDef("FMOBILE", "text", "移动电话", entity="FT_BD_CUSTCONTACT"),
        FieldDef("FIsDefaultConsignee", "bool", "默认收货地址", entity="FT_BD_CUSTCONTACT"),
    ),
    entities=(EntityDef("FT_BD_CUSTCONTACT", "FENTRYID", "地址信息"),),
)

SALES_ORDER = FormDef(
    form_id="SAL_SaleOrder", label="销售订单", pk="FID", number_key="FBillNo", number_prefix="XSDD",
    number_width=6, name_key=None,
    fields=(
        FieldDef("FID", "pk", "单据内码", readonly=True),
        FieldDef("FBillNo", "text", "单据编号"),
        FieldDef("FBillTypeID", "ref", "单据类型", ref_form="BOS_BillType"),
        FieldDef("FDate", "datetime", "日期", required=True),
        FieldDef("FSaleOrgId", "ref", "销售组织", ref_form="ORG_Organizations", required=True),
        FieldDef("FCustId", "ref", "客户", ref_form="BD_Customer", required=True),
        FieldDef("FSalerId", "ref", "销售员", ref_form="BD_Saler"),
        FieldDef("FNote", "text", "备注"),
        FieldDef("FDocumentStatus", "status", "单据状态", readonly=True),
        FieldDef("FCloseStatus", "text", "关闭状态"),
        FieldDef("FCreateDate", "datetime", "创建日期", readonly=True),
        FieldDef("FModifyDate", "datetime", "最后修改日期", readonly=True),
        # Sub-header FSaleOrderFinance (§1.5); FBillAllAmount as the header total is [UNC] there.
        FieldDef("FSettleCurrId", "ref", "结算币别", entity="FSaleOrderFinance", ref_form="BD_Currency",
                 required=True),
        FieldDef("FIsIncludedTax", "bool", "是否含税", entity="FSaleOrderFinance"),
        FieldDef("FExchangeTypeId", "ref", "汇率类型", entity="FSaleOrderFinance", ref_form="BD_RateType"),
        FieldDef("FBillAmount", "decimal", "税额前金额", entity="FSaleOrderFinance", readonly=True),
        FieldDef("FBillTaxAmount", "decimal", "税额", entity="FSaleOrderFinance", readonly=True),
        FieldDef("FBillAllAmount", "decimal", "价税合计", entity="FSaleOrderFinance", readonly=True),
        # Entry FSaleOrderEntry.
        FieldDef("FEntryID", "pk", "分录内码", entity="FSaleOrderEntry", readonly=True),
        FieldDef("FMaterialId", "ref", "物料编码", entity="FSaleOrderEntry", ref_form="BD_MATERIAL",
                 required=True),
        FieldDef("FUnitID", "ref", "销售单位", entity="FSaleOrderEntry", ref_form="BD_UNIT"),
        FieldDef("FQty", "decimal", "销售数量", entity="FSaleOrderEntry", required=True),
        FieldDef("FPrice", "decimal", "单价", entity="FSaleOrderEntry"),
        FieldDef("FTaxPrice", "decimal", "含税单价", entity="FSaleOrderEntry"),
        FieldDef("FEntryTaxRate", "decimal", "税率%", entity="FSaleOrderEntry"),
        FieldDef("FAmount", "decimal", "金额", entity="FSaleOrderEntry", readonly=True),
        FieldDef("FAllAmount", "decimal", "价税合计", entity="FSaleOrderEntry", readonly=True),
        FieldDef("FEntryNote", "text", "备注", entity="FSaleOrderEntry"),
    ),
    entities=(EntityDef("FSaleOrderEntry", "FEntryID", "订单明细"),),
    subheaders=("FSaleOrderFinance",),
)

RECEIVABLE = FormDef(
    form_id="AR_receivable", label="应收单", pk="FID", number_key="FBillNo", number_prefix="AR",
    number_width=8, name_key=None,
    fields=(
        FieldDef("FID", "pk", "单据内码", readonly=True),
        FieldDef("FBillNo", "text", "单据编号"),
        FieldDef("FBillTypeID", "ref", "单据类型", ref_form="BOS_BillType"),
        FieldDef("FDATE", "datetime", "业务日期", required=True),
        FieldDef("FENDDATE_H", "datetime", "到期日", required=True),
        FieldDef("FCUSTOMERID", "ref", "客户", ref_form="BD_Customer", required=True),
        FieldDef("FCURRENCYID", "ref", "币别", ref_form="BD_Currency", required=True),
        FieldDef("FSETTLEORGID", "ref", "结算组织", ref_form="ORG_Organizations"),
        FieldDef("FALLAMOUNTFOR", "decimal", "价税合计", required=True),
        # Guess (see module docstring): header written-off / open amounts, in bill currency.
        FieldDef("FWRITTENOFFAMOUNTFOR", "decimal", "已核销金额"),
        FieldDef("FNOTWRITTENOFFAMOUNTFOR", "decimal", "未核销金额", readonly=True),
        FieldDef("FWRITTENOFFSTATUS", "text", "核销状态", readonly=True),
        FieldDef("FDocumentStatus", "status", "单据状态", readonly=True),
        FieldDef("FCancelStatus", "text", "作废状态"),
        FieldDef("FCreateDate", "datetime", "创建日期", readonly=True),
        FieldDef("FModifyDate", "datetime", "修改日期", readonly=True),
    ),
)

RECEIPT = FormDef(
    form_id="AR_RECEIVEBILL", label="收款单", pk="FID", number_key="FBillNo", number_prefix="SKD",
    number_width=8, name_key=None,
    fields=(
        FieldDef("FID", "pk", "单据内码", readonly=True),
        FieldDef("FBillNo", "text", "单据编号"),
        FieldDef("FBillTypeID", "ref", "单据类型", ref_form="BOS_BillType"),
        FieldDef("FDATE", "datetime", "业务日期", required=True),
        FieldDef("FCONTACTUNITTYPE", "text", "往来单位类型"),
        # Really a multi-type reference steered by FCONTACTUNITTYPE; the sandbox models customers only.
        FieldDef("FCONTACTUNIT", "ref", "往来单位", ref_form="BD_Customer", required=True),
        FieldDef("FPAYUNITTYPE", "text", "付款单位类型"),
        FieldDef("FPAYUNIT", "ref", "付款单位", ref_form="BD_Customer"),
        FieldDef("FCURRENCYID", "ref", "币别", ref_form="BD_Currency", required=True),
        FieldDef("FPAYORGID", "ref", "收款组织", ref_form="ORG_Organizations"),
        FieldDef("FRECEIVEAMOUNTFOR", "decimal", "应收金额"),
        FieldDef("FREALRECAMOUNTFOR", "decimal", "实收金额", required=True),
        FieldDef("FDocumentStatus", "status", "单据状态", readonly=True),
        FieldDef("FCreateDate", "datetime", "创建日期", readonly=True),
        FieldDef("FModifyDate", "datetime", "修改日期", readonly=True),
    ),
)

FORMS: dict[str, FormDef] = {
    form.form_id.lower(): form
    for form in (
        CURRENCY, MATERIAL, UNIT, SALER, ORGANIZATION, CUSTOMER_GROUP, RATE_TYPE, BILL_TYPE,
        CUSTOMER, SALES_ORDER, RECEIVABLE, RECEIPT,
    )
}


def form_def(form_id: str) -> FormDef | None:
    """The form with this id (any case), or None when the sandbox does not model it."""
    return FORMS.get(form_id.lower())


__all__ = [
    "CUSTOMER",
    "DOCUMENT_STATUSES",
    "FORMS",
    "RECEIPT",
    "RECEIVABLE",
    "SALES_ORDER",
    "EntityDef",
    "FieldDef",
    "FieldType",
    "FormDef",
    "form_def",
]
