"""Every sentence a user reads, in zh and en: one catalogue, not spread over handlers.

`t(lang, key, **params)` renders one; the status, kind, severity and light
words are the same everywhere (replies, pushes, exports, bulletins).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.states import Refused

#: Telegram's limit on a message's text, in characters.
MESSAGE_MAX = 4096


def clip(text: str, limit: int = MESSAGE_MAX) -> str:
    """Text cut to Telegram's limit, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


LANGS = ("zh", "en")

STATUS = {
    "open": ("待整改", "open"),
    "in_progress": ("整改中", "in progress"),
    "submitted": ("待验收", "submitted"),
    "closed": ("已销号", "closed"),
    "cancelled": ("已撤销", "cancelled"),
}
KIND = {
    "problem": ("问题", "problem"),
    "commitment": ("承诺", "commitment"),
    "task": ("任务", "task"),
    "responsibility": ("责任", "responsibility"),
}
SEVERITY = {
    "general": ("一般", "general"),
    "serious": ("较重", "serious"),
    "severe": ("严重", "severe"),
}
ROLE = {
    "admin": ("管理员", "admin"),
    "leader": ("领导", "leader"),
    "inspector": ("督查员", "inspector"),
    "secretary": ("书记", "secretary"),
    "member": ("党员", "member"),
}
LEVEL = {
    1: ("谈话提醒", "reminder talk"),
    2: ("约谈函询", "formal inquiry"),
}
#: History events (models.ledger's event actions) as /item shows them.
EVENT = {
    "create": ("登记", "logged"),
    "acknowledge": ("确认收到", "acknowledged"),
    "plan": ("添加路线图步骤", "roadmap step added"),
    "note": ("进展说明", "progress note"),
    "submit": ("提交整改", "submitted"),
    "verify": ("验收销号", "verified and closed"),
    "reject": ("退回整改", "returned for rework"),
    "cancel": ("撤销", "cancelled"),
    "reopen": ("重新打开", "reopened"),
    "attach": ("上传佐证材料", "evidence attached"),
    "milestone_done": ("完成路线图步骤", "roadmap step done"),
    "extend_request": ("申请延期", "extension requested"),
    "extend_approve": ("同意延期", "extension approved"),
    "extend_deny": ("不同意延期", "extension denied"),
    "split": ("分解下发", "split to orgs below"),
    "close_by_children": ("下发事项全部销号", "closed: every part closed"),
    "import_update": ("导入更新", "updated by import"),
    "delegate": ("转交", "delegated"),
    "escalate": ("升级督办", "escalated"),
    "set_rrule": ("设置周期", "recurrence set"),
    "lookback": ("回头看复查通过", "passed its look-back"),
}

TEXTS: dict[str, tuple[str, str]] = {
    # Binding and greeting
    "unbound": (
        "您好！本机器人仅供已登记的督查工作人员使用。请向管理员索取邀请链接。",
        "Hello! This bot serves registered inspection staff only. "
        "Please ask your administrator for an invite link.",
    ),
    "bound": (
        "绑定成功，{name}（{org}）。发送 /help 查看可用命令。",
        "You are bound as {name} ({org}). Send /help to see your commands.",
    ),
    "greet": (
        "您好，{name}。发送 /help 查看可用命令。",
        "Hello, {name}. Send /help for your commands.",
    ),
    "invite_unknown": (
        "邀请码无效。请向管理员索取新的邀请链接。",
        "This invite code is not valid. Please ask for a new invite link.",
    ),
    "invite_used": ("该邀请码已被使用。", "This invite code has already been used."),
    "invite_expired": (
        "该邀请码已过期，请向管理员索取新的邀请链接。",
        "This invite code has expired; please ask for a new one.",
    ),
    "invite_revoked": ("该邀请码已被撤销。", "This invite code was revoked."),
    "account_bound": (
        "您的 Telegram 账号已绑定其他人员。",
        "Your Telegram account is already bound to someone else.",
    ),
    "whoami": (
        "{name}（{code}）\n组织：{org}\n角色：{roles}",
        "{name} ({code})\nOrg: {org}\nRoles: {roles}",
    ),
    "lang_set": ("已切换为中文。", "Language set to English."),
    "lang_usage": ("用法：/lang zh 或 /lang en", "Usage: /lang zh or /lang en"),
    "digest_usage": ("用法：/digest on 或 /digest off", "Usage: /digest on or /digest off"),
    "digest_on": (
        "已改为每日汇总推送一次（督办升级和退回仍即时通知）。",
        "You will get one daily digest (escalations and rejections still come at once).",
    ),
    "digest_off": ("已改为逐条即时推送。", "You will get single pushes again."),
    "unknown_command": (
        "没有这个命令。发送 /help 查看可用命令。",
        "There is no such command. Send /help for yours.",
    ),
    "help_header": ("您可以使用的命令：", "Your commands:"),
    "private_only": ("此操作请在私聊中继续。", "Please continue this in a private chat."),
    "private_button": ("在私聊中继续", "Continue in private"),
    "error": (
        "出错了，请稍后再试。错误编号：{error_id}",
        "Something went wrong; please try again. Error id: {error_id}",
    ),
    "cancelled": ("已取消。", "Cancelled."),
    "nothing_to_cancel": ("当前没有进行中的操作。", "Nothing to cancel."),
    "button_invalid": ("此按钮无效。", "This button is not valid."),
    "done_ok": ("已完成。", "Done."),
    # Item card
    "card_due": ("截止 {due}", "due {due}"),
    "card_no_due": ("无截止日期", "no due date"),
    "card_overdue": ("逾期 {days} 个工作日", "{days} working days overdue"),
    "card_left": ("剩余 {days} 个工作日", "{days} working days left"),
    "card_responsible": ("责任人：{name}", "Responsible: {name}"),
    "card_children": ("下发 {total} 个单位，已销号 {closed} 个", "{closed} of {total} closed"),
    "card_extensions": ("已延期 {count} 次", "extended {count}×"),
    "card_level": ("督办等级：{level}", "Escalation: {level}"),
    "card_evidence": ("佐证材料 {count} 件", "{count} pieces of evidence"),
    "card_milestones": ("路线图：", "Roadmap:"),
    "card_history": ("处理记录：", "History:"),
    # Buttons
    "btn_acknowledge": ("确认收到", "Acknowledge"),
    "btn_submit": ("提交整改", "Submit"),
    "btn_verify": ("验收销号", "Verify & close"),
    "btn_reject": ("退回", "Reject"),
    "btn_extend_approve": ("同意延期", "Approve extension"),
    "btn_extend_deny": ("不同意延期", "Deny extension"),
    "btn_details": ("详情", "Details"),
    "btn_prev": ("‹ 上一页", "‹ Previous"),
    "btn_next": ("下一页 ›", "Next ›"),
    # The read side (bot/queries.py): /my, /item, /ledger, /overdue, /lists, /export
    "item_usage": ("用法：/item 编号", "Usage: /item N"),
    "my_header": (
        "我的待办（{total} 项，最紧急的在前）：",
        "My open items ({total}, most urgent first):",
    ),
    "my_empty": ("您目前没有待办事项。", "You have no open items."),
    "step_behind": ("（未达序时进度）", " (behind schedule)"),
    "details_extensions": (
        "延期申请 {count} 次，已批准 {approved} 次",
        "{count} extension requests, {approved} approved",
    ),
    "details_extension_pending": ("延期至 {due} 待审批", "extension to {due} awaits a decision"),
    "history_line": ("{when} {action}（{actor}）", "{when} {action} ({actor})"),
    "history_reason": ("：{reason}", ": {reason}"),
    "history_system": ("系统", "system"),
    "scope_all": ("全部组织", "all orgs"),
    "ledger_header": ("台账统计：{scope}", "Ledger: {scope}"),
    "ledger_total": ("共 {total} 项：", "{total} items: "),
    "ledger_lights": (
        "🔴 红灯 {red} · 🟡 黄灯 {yellow} · 🟢 绿灯 {green}",
        "🔴 red {red} · 🟡 yellow {yellow} · 🟢 green {green}",
    ),
    "ledger_overdue": ("逾期 {count} 项", "{count} overdue"),
    "ledger_on_time": (
        "按期销号率 {rate}（按期 {on_time} / 已销号 {closed}）",
        "On-time closure {rate} ({on_time} of {closed} closed on time)",
    ),
    "ledger_on_time_none": ("按期销号率：暂无已销号事项", "On-time closure: nothing closed yet"),
    "chat_no_scope": (
        "本群未配置台账范围，无法统计。请联系管理员配置。",
        "This chat has no ledger scope configured; please ask your administrator.",
    ),
    "overdue_header": (
        "逾期事项（{total} 项，逾期最久的在前）：{scope}",
        "Overdue ({total}, most overdue first): {scope}",
    ),
    "overdue_none": ("{scope}：没有逾期事项。", "{scope}: nothing is overdue."),
    "lists_header": ("三清单公示：{org}（{total} 项）", "The three lists of {org} ({total}):"),
    "lists_empty": ("{org}暂无公示的三清单。", "{org} has no disclosed lists yet."),
    "lists_commitment": ("【承诺清单】", "[Commitments]"),
    "lists_task": ("【任务清单】", "[Tasks]"),
    "lists_responsibility": ("【责任清单】", "[Responsibilities]"),
    "lists_no_roadmap": ("路线图：尚未制定", "Roadmap: none yet"),
    "export_caption": (
        "台账导出：{scope}，共 {count} 项（{day}）",
        "Ledger export: {scope}, {count} items ({day})",
    ),
    # Actions on an item (bot/actions.py): usage lines, then what happened
    "usage_verify": ("用法：/verify 编号", "Usage: /verify N"),
    "usage_reject": ("用法：/reject 编号 理由", "Usage: /reject N REASON"),
    "usage_plan": (
        "用法：/plan 编号 步骤 | 日期（如 2026-03-20，或工作日天数如 5）",
        "Usage: /plan N STEP | DATE (e.g. 2026-03-20, or a number of working days like 5)",
    ),
    "usage_note": ("用法：/note 编号 内容", "Usage: /note N TEXT"),
    "usage_extend": (
        "用法：/extend 编号 新日期 理由（日期如 2026-03-31，或工作日天数）",
        "Usage: /extend N DATE REASON (e.g. 2026-03-31, or a number of working days)",
    ),
    "usage_split": (
        "用法：/split 编号 组织…（编码或名称，空格分隔），或 /split 编号 all",
        "Usage: /split N ORG… (codes or names, space-separated), or /split N all",
    ),
    "did_acknowledge": ("已确认收到。", "Acknowledged."),
    "did_verify": ("已验收销号。", "Verified and closed off."),
    "did_reject": ("已退回整改。理由：{reason}", "Returned for rework. Reason: {reason}"),
    "did_plan": ("已添加路线图步骤：{step}（{due}）", "Roadmap step added: {step} ({due})"),
    "did_note": ("已记录进展说明。", "Progress note recorded."),
    "did_extend": (
        "已申请延期至 {due}，等待审批。",
        "Extension to {due} requested; it awaits a decision.",
    ),
    "did_extend_approve": (
        "已同意延期，新的截止日期 {due}。",
        "Extension approved: now due {due}.",
    ),
    "did_extend_deny": ("已不同意延期申请。", "Extension denied."),
    "did_split": ("已分解下发：{children}", "Split into: {children}"),
    "did_split_none": ("没有新的下发单位。", "No new orgs to split to."),
    "list_separator": ("、", ", "),
    "reason_prompt": (
        "请发送退回 #{number} 的理由（直接发送下一条消息）。发送 /cancel 取消。",
        "Send the reason for returning #{number} as your next message. /cancel to stop.",
    ),
    # Conversations (bot/conversations/): /new, /commit /task /duty, /submit … /done, evidence
    "create_usage": (
        "用法：/{command} 组织 | 标题 | 期限 [| 严重程度]\n"
        "组织：编码或名称中的几个字；期限：YYYY-MM-DD 或工作日天数（如 5），可省略，"
        "省略时按严重程度默认；严重程度：一般、较重或严重，默认一般。"
        "只发送 /new 则逐步引导登记。",
        "Usage: /{command} ORG | TITLE | DUE [| SEVERITY]\n"
        "ORG: a code or part of the name; DUE: YYYY-MM-DD or a number of working days "
        "(e.g. 5), optional, defaulting by severity; SEVERITY: general, serious or severe "
        "(default general). Send /new alone to be guided step by step.",
    ),
    "created": ("已登记{kind} #{number}。", "Logged {kind} #{number}."),
    "attach_hint": (
        "15 分钟内发送的照片、位置、文件、语音、视频或文字将附到 #{number}；发送 /done 结束。",
        "Photos, locations, files, voice, video or text you send in the next 15 minutes "
        "are attached to #{number}; /done to stop.",
    ),
    "attached": (
        "#{number}：已附上（共 {count} 件佐证材料）。",
        "#{number}: attached ({count} pieces of evidence).",
    ),
    "already_attached": (
        "#{number}：这份材料已附上，未重复添加（共 {count} 件）。",
        "#{number}: already attached, not added twice ({count} pieces of evidence).",
    ),
    "attach_finished": (
        "#{number}：附材料结束，共 {count} 件佐证材料。",
        "#{number}: done attaching; {count} pieces of evidence.",
    ),
    "org_not_in_scope": (
        "在您的职责范围内找不到组织“{value}”。",
        "No org matching {value!r} in your scope.",
    ),
    "org_out_of_scope": ("该组织不在您的职责范围内。", "That org is outside your scope."),
    "too_long_field": (
        "{field}过长（{length} 字），最多 {max} 字。未保存任何内容。",
        "The {field} is too long ({length} characters; at most {max}). Nothing was saved.",
    ),
    "field_title": ("标题", "title"),
    "field_description": ("描述", "description"),
    "field_category": ("类别", "category"),
    "field_reason": ("理由", "reason"),
    "field_text": ("文字", "text"),
    "field_note": ("进展说明", "note"),
    "field_step": ("路线图步骤", "roadmap step"),
    "nothing_to_finish": ("当前没有需要完成的操作。", "There is nothing to finish."),
    "no_flow_hint": (
        "这条消息没有对应的事项。要附材料，请回复事项消息，或发送 /submit 编号；"
        "发送 /help 查看命令。",
        "This message belongs to no item. To attach it, reply to the item's message, "
        "or send /submit N; /help lists your commands.",
    ),
    "button_stale": (
        "这个问题已经回答过了，或操作已结束。",
        "That question was already answered, or the step is over.",
    ),
    # The guided /new
    "new_step": ("（{step}/{steps}）", "({step}/{steps}) "),
    "new_ask_org": (
        "在哪个组织发现的问题？请发送组织编码或名称中的几个字。",
        "Which org is it about? Send its code or part of its name.",
    ),
    "new_pick_org": (
        "“{value}”对应多个组织，请选择：",
        "{value!r} matches several orgs; pick one:",
    ),
    "new_ask_category": (
        "问题类别（如“组织生活”）？可点“跳过”。",
        'The category (e.g. "organisational life")? Or skip.',
    ),
    "new_ask_severity": ("严重程度？", "How serious is it?"),
    "new_ask_description": (
        "请描述发现的问题（最多 {max} 字）。第一行将作为标题。",
        "Describe the problem (at most {max} characters). The first line becomes the title.",
    ),
    "new_ask_evidence": (
        "请发送照片、位置、文件、语音或视频作为佐证（已收到 {count} 件）。"
        "发完点“完成”或发送 /done。",
        "Send photos, locations, files, voice or video as evidence ({count} so far). "
        "Press Done or send /done when finished.",
    ),
    "new_evidence_got": (
        "已收到，作为佐证材料（共 {count} 件）。",
        "Kept as evidence ({count} so far).",
    ),
    "new_ask_due": (
        "整改期限？按严重程度默认为 {due}。点按钮采用默认，或发送日期（YYYY-MM-DD）或工作日天数。",
        "The deadline? By severity it defaults to {due}. Press the button for the default, "
        "or send a date (YYYY-MM-DD) or a number of working days.",
    ),
    "new_confirm": (
        "请确认登记：\n组织：{org}\n类别：{category}\n严重程度：{severity}\n标题：{title}\n"
        "佐证材料：{count} 件\n整改期限：{due}\n描述：{description}",
        "Please confirm:\nOrg: {org}\nCategory: {category}\nSeverity: {severity}\n"
        "Title: {title}\nEvidence: {count}\nDue: {due}\nDescription: {description}",
    ),
    "new_resume": (
        "继续您未完成的登记（发送 /cancel 可重新开始）：",
        "Continuing your unfinished finding (/cancel to start over):",
    ),
    "new_use_buttons": ("请点下面的按钮，或发送 /cancel。", "Please press a button, or /cancel."),
    "new_answer_first": ("请先回答这个问题：", "Please answer this question first:"),
    "none_word": ("无", "none"),
    "btn_skip": ("跳过", "Skip"),
    "btn_done": ("完成", "Done"),
    "btn_due_default": ("{due}（默认）", "{due} (default)"),
    "btn_confirm": ("确认登记", "Confirm"),
    "btn_cancel": ("取消", "Cancel"),
    # /submit … /done
    "submit_usage": ("用法：/submit 编号 [整改情况说明]", "Usage: /submit N [report]"),
    "submit_open": (
        "提交 #{number} 的整改：请发送照片、文件、语音、视频、位置或文字说明。"
        "发送 /done 提交，/cancel 放弃。",
        "Submitting #{number}: send photos, files, voice, video, locations or text. "
        "/done submits, /cancel drops it.",
    ),
    "submit_opened": ("请发送整改材料", "Send your evidence"),
    "submit_got": (
        "#{number}：已收到 {count} 件材料。发送 /done 提交，/cancel 放弃。",
        "#{number}: {count} pieces received. /done submits, /cancel drops them.",
    ),
    "submit_empty": (
        "#{number} 还没有任何佐证材料。可以继续发送材料后再 /done，"
        "或不附材料直接提交，由验收人判断。",
        "#{number} has no evidence yet. Send some and then /done, or submit without "
        "evidence and let the verifier judge.",
    ),
    "btn_submit_anyway": ("不附材料，直接提交", "Submit without evidence"),
    "submitted": (
        "#{number} 已提交，等待验收（佐证材料 {count} 件）。",
        "#{number} submitted for verification ({count} pieces of evidence).",
    ),
    "submit_cancelled": (
        "已放弃提交 #{number}，未附任何材料。",
        "Submission of #{number} dropped; nothing was attached.",
    ),
    # Reasons asked for by action buttons
    "reason_wanted": (
        "请用文字发送理由（最多 1000 字），或发送 /cancel。",
        "Please send the reason as text (at most 1,000 characters), or /cancel.",
    ),
    "reason_again": ("请重新发送理由，或发送 /cancel。", "Send the reason again, or /cancel."),
    "reason_done": ("#{number}：已处理。理由：{reason}", "#{number}: done. Reason: {reason}"),
    # Bulletins, the "four ones" (models/bulletins.py)
    "bulletin_daily_title": ("【每日动态】{day} · {scope}", "[Daily digest] {day} · {scope}"),
    "bulletin_new": ("新增 {count} 项：", "New: {count}"),
    "bulletin_closed": ("销号 {count} 项：", "Closed: {count}"),
    "bulletin_newly_overdue": ("新增逾期 {count} 项：", "Newly overdue: {count}"),
    "bulletin_item_line": ("#{number} {title}（{org}）", "#{number} {title} ({org})"),
    "bulletin_due_line": (
        "#{number} {title}（{org}），截止 {due}",
        "#{number} {title} ({org}), due {due}",
    ),
    "bulletin_more": ("……另有 {count} 项", "… and {count} more"),
    "bulletin_weekly_title": (
        "【督查情况通报】{period}（{start} 至 {end}）",
        "[Weekly report] {period} ({start} to {end})",
    ),
    "bulletin_scope": ("范围：{scope}", "Scope: {scope}"),
    "bulletin_flow": (
        "本期新增 {new} 项，销号 {closed} 项（其中按期 {on_time} 项）",
        "This period: {new} new, {closed} closed ({on_time} on time)",
    ),
    "bulletin_as_of": ("截至 {day}，", "As of {day}: "),
    "bulletin_by_org": ("各单位情况：", "By org:"),
    "bulletin_org_line": (
        "{code} {name}：共 {total} 项（{statuses}）{lights}",
        "{code} {name}: {total} ({statuses}) {lights}",
    ),
    "bulletin_more_orgs": (
        "……另有 {count} 个单位，详见附件台账",
        "… and {count} more orgs: see the attached ledger",
    ),
    "bulletin_oldest": ("逾期最久的事项：", "Overdue longest:"),
    "bulletin_overdue_line": (
        "#{number} {title}（{org}），截止 {due}，逾期 {days} 个工作日",
        "#{number} {title} ({org}), due {due}, {days} working days overdue",
    ),
    "bulletin_attached": (
        "附：统计图（PNG）、台账明细（Excel）",
        "Attached: a chart (PNG) and the ledger (Excel)",
    ),
    "bulletin_monthly_title": (
        "【月度讲评】{period} 好中差评价",
        "[Monthly review] {period}: good, average, poor",
    ),
    "bulletin_rule": (
        "只看整改结果：按期销号率、逾期、退回、回潮；不看在线时长、发言和打卡。",
        "Outcomes only: on-time closure, overdue, rejections, relapses; "
        "never online time, messages or check-ins.",
    ),
    "bulletin_units": ("参评单位 {count} 个。", "{count} units graded."),
    "bulletin_no_units": ("范围内没有参评的基层单位。", "No units to grade in this scope."),
    "bulletin_no_grades": (
        "各单位结果相同，本期不分好差。",
        "Every unit has the same result: no good or poor this time.",
    ),
    "bulletin_good": ("好（{count} 个）：", "Good ({count}):"),
    "bulletin_poor": ("差（{count} 个）：", "Poor ({count}):"),
    "bulletin_average": ("中：{count} 个单位", "Average: {count} units"),
    "bulletin_rank_line": (
        "{position}. {name}（{code}）{score} 分：按期率 {rate}（{on_time}/{due}），"
        "逾期 {overdue}，退回 {rejections}，回潮 {relapses}",
        "{position}. {name} ({code}) {score} points: on time {rate} ({on_time}/{due}), "
        "overdue {overdue}, rejections {rejections}, relapses {relapses}",
    ),
    "bulletin_quarterly_title": (
        "【季度进展】{period} 三清单一台账",
        "[Quarterly progress] {period}: the three lists and the ledger",
    ),
    "bulletin_kind_line": (
        "{kind}：共 {total} 项（{statuses}），销号率 {rate}；"
        "本季度新增 {new} 项、销号 {closed} 项（按期 {on_time} 项）",
        "{kind}: {total} ({statuses}), {rate} closed; "
        "this quarter {new} new, {closed} closed ({on_time} on time)",
    ),
    "chart_title": ("{period} 各单位未销号事项红黄绿灯", "{period}: open items by light and org"),
    "chart_red": ("红灯", "red"),
    "chart_yellow": ("黄灯", "yellow"),
    "chart_green": ("绿灯", "green"),
    "chart_items": ("事项数", "items"),
    "chart_nothing": ("没有未销号事项", "nothing open"),
    # Spot checks and look-backs (models/spotchecks.py, bot/spotchecks.py)
    "spotcheck_push": (
        "【随机抽查】{period} 本组抽查任务（不打招呼，请勿提前告知被查单位）：",
        "[Spot checks] {period} for your group (unannounced: do not tell the units beforehand):",
    ),
    "spotcheck_unit_line": ("· {name}（{code}）— {group}", "· {name} ({code}) — {group}"),
    "lookback_push": (
        "【回头看】{period} 本组复查事项（已销号 30–90 天）：",
        "[Look-back] {period}: closed items for your group to re-inspect (closed 30–90 days ago):",
    ),
    "lookback_item_line": (
        "· #{number} {title}（{org}，{closed} 销号）— {group}",
        "· #{number} {title} ({org}, closed {closed}) — {group}",
    ),
    "lookback_how": (
        "复查后发送 /lookback 编号 pass，或 /lookback 编号 fail 发现的问题。",
        "After the check send /lookback N pass, or /lookback N fail WHAT YOU FOUND.",
    ),
    "spotcheck_header": ("本月（{period}）抽查任务：", "Spot checks this month ({period}):"),
    "spotcheck_none": (
        "本月（{period}）您所在的督查组没有抽查任务。",
        "Your groups have no spot checks this month ({period}).",
    ),
    "spotcheck_units": ("随机抽查单位：", "Units to inspect:"),
    "spotcheck_lookbacks": ("回头看事项：", "Look-back checks:"),
    "spotcheck_passed": ("（已复查：通过）", " (checked: passed)"),
    "spotcheck_failed": ("（已复查：未通过）", " (checked: failed)"),
    "spotcheck_inspectors_only": (
        "此命令仅供督查组成员使用。",
        "This command is for inspection group members.",
    ),
    "usage_lookback": (
        "用法：/lookback 编号 pass，或 /lookback 编号 fail 发现的问题",
        "Usage: /lookback N pass, or /lookback N fail WHAT YOU FOUND",
    ),
    "did_lookback_pass": (
        "已记录：#{number} 回头看通过。",
        "Recorded: #{number} passed its look-back.",
    ),
    "did_lookback_fail": (
        "已记录：#{number} 回头看未通过，事项已重新打开，计回潮一次。",
        "Recorded: #{number} failed its look-back; it is reopened and counts a relapse.",
    ),
    # Follow-ups (models/sweep.py, models/notices.py, models/recurrence.py)
    "notice_file": ("约谈函询通知书-{code}-{day}.docx", "inquiry-notice-{code}-{day}.docx"),
    "notice_title": ("约谈函询通知书", "Formal inquiry notice"),
    "notice_to": ("{unit}：", "To: {unit}"),
    "notice_body": (
        "经查，截至{day}，你单位有以下{count}项整改事项逾期未完成，最长逾期{longest}个工作日。"
        "根据问题整改督查工作有关规定，现对你单位进行约谈函询。请你单位主要负责同志自收到本通知之日起"
        "{reply_days}个工作日内，就逾期原因、整改措施和完成时限作出书面说明，报送{issuer}。",
        "As of {day}, the {count} rectification items of your unit listed below are overdue, "
        "the longest by {longest} working days. Under the rules on the supervision of "
        "rectification, your unit is hereby given a formal inquiry. The head of your unit is "
        "asked to explain in writing, within {reply_days} working days of receiving this "
        "notice, why the items are overdue, what will be done and by when, and to send the "
        "explanation to {issuer}.",
    ),
    "notice_col_number": ("编号", "No."),
    "notice_col_title": ("事项", "Item"),
    "notice_col_due": ("整改时限", "Due"),
    "notice_col_overdue": ("逾期工作日", "Working days overdue"),
    "notice_col_responsible": ("责任人", "Responsible"),
    "notice_signature": ("签发人：____________（盖章）", "Signed: ____________ (seal)"),
    "notice_day": ("{year}年{month}月{day}日", "{iso}"),
    "occurrence_title": ("{title}（{day}）", "{title} ({day})"),
    # Pushes (tasks/delivery.py, tasks/rendering.py): what happened, said before the item's card
    "push_assigned": (
        "新交办事项：请确认收到，并安排整改。",
        "New item for you: acknowledge it and plan the work.",
    ),
    "push_remind": (
        "提醒：距整改期限还有 {days} 个工作日。",
        "Reminder: {days} working day(s) left before the due date.",
    ),
    "push_overdue": (
        "已逾期：请抓紧整改并提交。",
        "Overdue: please finish the work and submit it.",
    ),
    "push_escalate_1": (
        "督办升级（谈话提醒）：已逾期 {days} 个工作日，请约谈责任人，督促整改。",
        "Escalated (reminder talk): {days} working days overdue. "
        "Talk to the responsible person and see it done.",
    ),
    "push_escalate_2": (
        "督办升级（约谈函询）：已逾期 {days} 个工作日，请启动约谈函询。",
        "Escalated (formal inquiry): {days} working days overdue. Start the formal inquiry.",
    ),
    "push_submitted": ("已提交整改，请验收或退回。", "Submitted: please verify it or return it."),
    "push_verified": ("已验收销号。", "Verified and closed off."),
    "push_rejected": ("被退回整改。理由：{reason}", "Returned for rework. Reason: {reason}"),
    "push_reopened": ("已重新打开。理由：{reason}", "Reopened. Reason: {reason}"),
    "push_cancelled": ("已撤销。理由：{reason}", "Cancelled. Reason: {reason}"),
    "push_extension_requested": (
        "申请延期至 {due}，请审批。",
        "An extension to {due} is requested: please decide.",
    ),
    "push_extension_approved": (
        "延期已批准，新的截止日期 {due}。",
        "Extension approved: now due {due}.",
    ),
    "push_extension_denied": (
        "延期申请未获批准，截止日期不变。",
        "Extension denied: the due date stands.",
    ),
    "push_update": ("事项有更新。", "The item has changed."),
    "push_bundle_header": ("您有 {count} 条提醒：", "{count} updates for you:"),
    "push_digest_header": ("今日汇总（{count} 条）：", "Your daily digest ({count}):"),
    "push_item_button": ("#{number} 详情", "#{number} details"),
    "push_unreachable_member": (
        "无法向 {name}（{code}）推送消息：对方已屏蔽机器人或从未打开机器人。"
        "请联系其在 Telegram 中重新打开机器人；之前未送达的消息可用 "
        "closeout notifications --failed 查看。",
        "Cannot reach {name} ({code}): they blocked the bot or never opened it. "
        "Please ask them to open the bot again in Telegram; "
        "closeout notifications --failed lists what did not arrive.",
    ),
    "push_unreachable_chat": (
        "无法在群组 {chat} 发消息：机器人已被移出或无权发言。",
        "Cannot post in chat {chat}: the bot was removed or may not write there.",
    ),
}

#: Sentences for the domain's refusal codes (models.states, models.permissions, models.ledger).
REFUSALS: dict[str, tuple[str, str]] = {
    "out_of_scope": ("#{number} 不在您的职责范围内。", "#{number} is outside your scope."),
    "role_required": ("您的角色不能执行此操作。", "Your role does not allow this."),
    "own_submission": (
        "不能验收自己提交的整改（验收与提交须分离）。",
        "You cannot verify what you submitted yourself.",
    ),
    "own_request": (
        "不能审批自己提出的延期申请。",
        "You cannot decide your own extension request.",
    ),
    "unknown_action": ("无法识别的操作。", "Unknown action."),
    "unknown_kind": ("无法识别的类型。", "Unknown kind."),
    "unknown_status": ("无法识别的状态。", "Unknown status."),
    "already_acknowledged": ("该事项已确认。", "The item is already acknowledged."),
    "already_submitted": (
        "该事项已提交，等待验收。",
        "The item is submitted and awaits verification.",
    ),
    "already_closed": ("该事项已销号。", "The item is closed."),
    "already_cancelled": ("该事项已撤销。", "The item is cancelled."),
    "not_submitted": ("该事项尚未提交整改。", "The item has not been submitted."),
    "not_closed": ("只有已销号的事项才能重新打开。", "Only a closed item can be reopened."),
    "reason_required": ("请说明理由。", "A reason is required."),
    "reason_too_long": (
        "理由过长（{length} 字），最多 {max} 字。",
        "The reason is {length} characters; at most {max}.",
    ),
    "title_required": ("请填写标题。", "A title is required."),
    "too_long": (
        "内容过长（{length} 字），最多 {max} 字。",
        "Too long ({length} characters); at most {max}.",
    ),
    "unknown_severity": ("无法识别的严重程度。", "Unknown severity."),
    "unknown_source": ("无法识别的来源。", "Unknown source."),
    "unknown_item": ("没有编号为 #{number} 的事项。", "There is no item #{number}."),
    "unknown_org": ("找不到组织“{value}”。", "No org matches {value!r}."),
    "ambiguous_org": (
        "“{value}”对应多个组织：{choices}。请写得更具体些。",
        "{value!r} matches several orgs: {choices}. Please be more specific.",
    ),
    "unknown_member": ("找不到人员“{value}”。", "No member {value!r}."),
    "no_responsible": (
        "{org} 没有书记，请指定责任人。",
        "{org} has no secretary; name a responsible person.",
    ),
    "due_in_past": ("日期 {due} 已过。", "The date {due} is already past."),
    "due_required": ("请填写截止日期。", "A due date is required."),
    "bad_date": (
        "“{value}”不是日期，请用 YYYY-MM-DD 或工作日天数。",
        "{value!r} is not a date; use YYYY-MM-DD or a number of working days.",
    ),
    "bad_number": ("“{value}”不是事项编号。", "{value!r} is not an item number."),
    "stale": (
        "此消息已过时：#{number} 已有变化。",
        "This message is out of date: #{number} has changed.",
    ),
    "extension_pending": (
        "#{number} 已有待审批的延期申请。",
        "An extension of #{number} already awaits a decision.",
    ),
    "no_extension_pending": (
        "#{number} 没有待审批的延期申请。",
        "No extension of #{number} awaits a decision.",
    ),
    "responsible_outside_org": (
        "{member} 不是 {org} 的成员。",
        "{member} is not a member of {org}.",
    ),
    "not_a_child_org": ("{org} 不是该事项所属组织的下级。", "{org} is not below the item's org."),
    "nothing_to_split": ("该组织下没有可下发的单位。", "There is no org below to split to."),
    "unknown_evidence_kind": ("无法识别的材料类型。", "Unknown kind of evidence."),
    "unknown_milestone": ("#{number} 没有这个路线图步骤。", "#{number} has no such roadmap step."),
    "date_too_far": (
        "日期 {due} 太远，请填写 {years} 年以内的日期。",
        "The date {due} is too far ahead; at most {years} years.",
    ),
    # Spot checks and look-backs (models/spotchecks.py)
    "no_lookback": (
        "本月没有分配给您所在督查组的 #{number} 回头看任务。",
        "No look-back of #{number} is assigned to your groups this month.",
    ),
    "lookback_recorded": (
        "#{number} 的回头看结果已经记录。",
        "The look-back of #{number} is already recorded.",
    ),
    "own_unit": ("不能检查自己所在的单位。", "You cannot inspect your own unit."),
    "finding_required": (
        "未通过时请写明发现的问题：/lookback 编号 fail 问题说明",
        "Say what you found: /lookback N fail WHAT YOU FOUND",
    ),
    "bad_rrule": (
        "周期规则 {rule} 无法使用（RFC 5545 RRULE，最短按天重复）。"
        "示例：FREQ=MONTHLY;BYDAY=1FR（每月第一个星期五）",
        "Cannot use the recurrence rule {rule}: {reason}. "
        "Example: FREQ=MONTHLY;BYDAY=1FR (the first Friday of each month)",
    ),
    "not_a_responsibility": (
        "只有责任清单事项可以设置周期，#{number} 不是。",
        "Only responsibilities recur; #{number} is not one.",
    ),
    # A conversation holding gathered material (bot/conversations/flows.py)
    "busy_submit": (
        "您正在提交 #{number}（已收到 {count} 件材料）。请先发送 /done 提交，或 /cancel 放弃。",
        "You are submitting #{number} ({count} pieces so far). Send /done to submit "
        "or /cancel to drop it first.",
    ),
    "busy_new": (
        "您有一条尚未完成的问题登记（已收到 {count} 件材料）。请先完成，或发送 /cancel 放弃。",
        "You have a finding half logged ({count} pieces of evidence). Finish it, "
        "or /cancel it first.",
    ),
}


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


def _render(template: str, params: Mapping[str, Any]) -> str:
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError):
        # A missing parameter must never turn a message into a crash.
        return template


def t(lang: str, key: str, **params: Any) -> str:
    """The sentence `key` in `lang` (zh unless "en"), filled with `params`."""
    return _render(_pick(TEXTS[key], lang), params)


def refusal(lang: str, refused: Refused) -> str:
    """The user's sentence for a domain refusal; the English fallback if the code is new."""
    pair = REFUSALS.get(refused.code)
    if pair is None:
        return str(refused)
    return _render(_pick(pair, lang), refused.params)


def status_word(lang: str, status: str) -> str:
    return _pick(STATUS.get(status, (status, status)), lang)


def kind_word(lang: str, kind: str) -> str:
    return _pick(KIND.get(kind, (kind, kind)), lang)


def severity_word(lang: str, severity: str) -> str:
    return _pick(SEVERITY.get(severity, (severity, severity)), lang)


def role_word(lang: str, role: str) -> str:
    return _pick(ROLE.get(role, (role, role)), lang)


def level_word(lang: str, level: int) -> str:
    return _pick(LEVEL.get(level, (str(level), str(level))), lang)


def event_word(lang: str, action: str) -> str:
    return _pick(EVENT.get(action, (action, action)), lang)
