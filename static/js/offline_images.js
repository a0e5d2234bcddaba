// ReDoc's sidebar shows a logo from a CDN (cdn.redoc.ly), and no option turns it off. Loaded before ReDoc on
// /api/redoc/, this makes any image address outside the host an empty image, so that the page asks
// nothing of the internet (README, "Pages").
(function () {
  "use strict";
  var EMPTY = "data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==";

  function local(url) {
    var address = new URL(String(url), document.baseURI);
    return !/^https?:$/.test(address.protocol) || address.origin === location.origin ? String(url) : EMPTY;
  }

  var setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (this instanceof HTMLImageElement && String(name).toLowerCase() === "src") value = local(value);
    return setAttribute.call(this, name, value);
  };
  var src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    configurable: true,
    get: function () { return src.get.call(this); },
    set: function (value) { src.set.call(this, local(value)); },
  });
})();
