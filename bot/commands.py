"""The command list: who may use each command, and its description in zh and en.

One table feeds `/help` (only what the reader's roles allow) and
`set_my_commands` (registered per language).
"""

from __future__ import annotations

from dataclasses import dataclass

from models.roles import ROLES

EVERYONE = frozenset(ROLES)
INSPECTORS = frozenset({"admin", "inspector", "leader"})
CREATORS = frozenset({"admin", "inspector", "leader", "secretary"})
UNIT = frozenset({"admin", "secretary", "member", "leader", "inspector"})
OVERSIGHT = frozenset({"admin", "leader", "inspector", "secretary"})


@dataclass(frozen=True)
class Command:
    name: str
    roles: frozenset[str]
    zh: str
    en: str

    def description(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


COMMANDS: tuple[Command, ...] = (
    Command("my", EVERYONE, "我的待办事项", "My open items, most urgent first"),
    Command("item", EVERYONE, "事项详情：/item 编号", "Item details: /item N"),
    Command(
        "new",
        INSPECTORS,
        "登记问题：/new 组织 | 标题 | 期限",
        "Log a finding: /new ORG | TITLE | DUE",
    ),
    Command("commit", CREATORS, "新增承诺：/commit 组织 | 标题 | 期限", "Add a commitment"),
    Command("task", CREATORS, "新增任务：/task 组织 | 标题 | 期限", "Add a task"),
    Command("duty", CREATORS, "新增责任：/duty 组织 | 标题 | 期限", "Add a responsibility"),
    Command("lists", EVERYONE, "三清单公示", "The disclosed three lists"),
    Command("ledger", OVERSIGHT, "台账统计", "Ledger counts for a scope"),
    Command("overdue", OVERSIGHT, "逾期事项", "Overdue items"),
    Command("submit", UNIT, "提交整改：/submit 编号", "Submit rectification: /submit N"),
    Command("done", UNIT, "完成提交", "Finish a submission"),
    Command("verify", INSPECTORS, "验收销号：/verify 编号", "Verify and close: /verify N"),
    Command("reject", INSPECTORS, "退回整改：/reject 编号 理由", "Reject: /reject N REASON"),
    Command("plan", UNIT, "添加路线图步骤：/plan 编号 步骤 | 日期", "Add a roadmap step"),
    Command("note", UNIT, "进展说明：/note 编号 内容", "Progress note: /note N TEXT"),
    Command("extend", UNIT, "申请延期：/extend 编号 日期 理由", "Ask for an extension"),
    Command("export", OVERSIGHT, "导出台账（Excel）", "Export the ledger (.xlsx)"),
    Command("split", INSPECTORS, "分解下发：/split 编号 组织…|all", "Split to orgs below"),
    Command("digest", EVERYONE, "每日汇总推送：/digest on|off", "One daily digest: /digest on|off"),
    Command(
        "spotcheck", frozenset({"admin", "inspector"}), "本月抽查任务", "This month's spot checks"
    ),
    Command(
        "lookback",
        frozenset({"admin", "inspector"}),
        "回头看复查：/lookback 编号 pass|fail 问题",
        "Look-back result: /lookback N pass|fail WHAT",
    ),
    Command("lang", EVERYONE, "语言：/lang zh|en", "Language: /lang zh|en"),
    Command("whoami", EVERYONE, "我的身份", "Who am I"),
    Command("help", EVERYONE, "帮助", "Help"),
    Command("cancel", EVERYONE, "取消当前操作", "Cancel the current step"),
)


def commands_for(roles: frozenset[str]) -> list[Command]:
    """The commands a member with `roles` may use, in the list's order."""
    return [command for command in COMMANDS if command.roles & roles]
