// Keep the newest message in view: each conversation scrolls to its end, and after a message was sent (the URL
// names the conversation, #chat-A) that conversation's newest message and its message box are brought on screen.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".messages").forEach(function (list) { list.scrollTop = list.scrollHeight; });
  var target = window.location.hash && document.getElementById(window.location.hash.slice(1));
  if (!target) { return; }
  var items = target.querySelectorAll(".messages li");
  var form = target.querySelector("form.say");
  if (items.length) { items[items.length - 1].scrollIntoView({block: "center"}); }
  if (form) { form.scrollIntoView({block: "nearest"}); }
});
