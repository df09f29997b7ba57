<?xml version="1.0" encoding="UTF-8"?>
<!--
  aggregator's browser view of its Atom and RSS feeds. Each feed file names
  this stylesheet in an xml-stylesheet processing instruction, so a browser that
  opens the feed shows a readable page (title, how to subscribe, every entry with
  its source and both dates) instead of raw XML. Feed readers ignore it.
  XSLT 1.0, no scripts, no external resources.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:agg="https://github.com/aggregator-project/aggregator/ns/1.0"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    exclude-result-prefixes="atom agg dc">

  <xsl:output method="html" version="5.0" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:template match="/">
    <xsl:variable name="title" select="atom:feed/atom:title | rss/channel/title"/>
    <xsl:variable name="subtitle" select="atom:feed/atom:subtitle | rss/channel/description"/>
    <xsl:variable name="self" select="(atom:feed/atom:link[@rel='self'] | rss/channel/atom:link[@rel='self'])[1]/@href"/>
    <xsl:variable name="links" select="atom:feed/atom:link | rss/channel/atom:link"/>
    <html lang="en">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (web feed)</title>
        <style>
          body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
                 max-width: 46rem; margin: 0 auto; padding: 1.5rem 1rem 4rem; }
          header h1 { margin: 0 0 .25rem; font-size: 1.8rem; }
          .subtitle { margin: 0 0 1rem; color: #555; }
          .subscribe { background: #fff8e1; border: 1px solid #f0d58c; border-radius: 6px; padding: .75rem 1rem; }
          .subscribe code { display: block; margin-top: .4rem; padding: .35rem .5rem; background: #fff;
                            border: 1px solid #ddd; border-radius: 4px; word-break: break-all; }
          nav.history { margin: 1rem 0; }
          nav.history a { margin-right: 1rem; }
          article { border-bottom: 1px solid #e5e5e5; padding: 1rem 0; }
          article h2 { font-size: 1.15rem; margin: 0 0 .3rem; }
          article h2 a { color: #0b57d0; text-decoration: none; }
          article h2 a:hover { text-decoration: underline; }
          .meta { color: #555; font-size: .9rem; margin: 0; }
          .source { font-weight: 600; color: #1d1d1f; }
          .related { font-size: .85rem; color: #555; margin: .3rem 0 0; }
        </style>
      </head>
      <body>
        <header>
          <h1><xsl:value-of select="$title"/></h1>
          <xsl:if test="string($subtitle) != string($title)">
            <p class="subtitle"><xsl:value-of select="$subtitle"/></p>
          </xsl:if>
          <div class="subscribe">
            <strong>This is a web feed.</strong>
            To follow it, copy this address into your feed reader (for example NetNewsWire, Feedly,
            Inoreader, Thunderbird or Miniflux):
            <code><xsl:value-of select="$self"/></code>
          </div>
        </header>
        <nav class="history">
          <xsl:for-each select="$links[@rel='current']"><a href="{@href}">Latest entries</a></xsl:for-each>
          <xsl:for-each select="$links[@rel='next-archive']"><a href="{@href}">Newer entries</a></xsl:for-each>
          <xsl:for-each select="$links[@rel='prev-archive']"><a href="{@href}">Older entries</a></xsl:for-each>
        </nav>
        <main>
          <xsl:apply-templates select="atom:feed/atom:entry | rss/channel/item"/>
          <xsl:if test="not(atom:feed/atom:entry | rss/channel/item)">
            <p>No entries yet.</p>
          </xsl:if>
        </main>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="atom:entry">
    <article>
      <h2>
        <a href="{(atom:link[not(@rel) or @rel='alternate'])[1]/@href}"><xsl:value-of select="atom:title"/></a>
      </h2>
      <p class="meta">
        <span class="source"><xsl:value-of select="atom:source/atom:title"/></span>
        · originally published <time datetime="{atom:published}"><xsl:call-template name="iso-date">
          <xsl:with-param name="value" select="atom:published"/></xsl:call-template></time>
        · republished <time datetime="{agg:republished}"><xsl:call-template name="iso-date">
          <xsl:with-param name="value" select="agg:republished"/></xsl:call-template></time>
      </p>
      <xsl:if test="atom:link[@rel='related']">
        <p class="related">Also carried by:
          <xsl:for-each select="atom:link[@rel='related']">
            <a href="{@href}"><xsl:value-of select="@title"/></a>
            <xsl:if test="position() != last()">; </xsl:if>
          </xsl:for-each>
        </p>
      </xsl:if>
    </article>
  </xsl:template>

  <xsl:template match="item">
    <article>
      <h2><a href="{link}"><xsl:value-of select="title"/></a></h2>
      <p class="meta">
        <span class="source"><xsl:value-of select="source"/></span>
        · originally published <time><xsl:call-template name="rfc822-date">
          <xsl:with-param name="value" select="pubDate"/></xsl:call-template></time>
        · republished <time datetime="{agg:republished}"><xsl:call-template name="iso-date">
          <xsl:with-param name="value" select="agg:republished"/></xsl:call-template></time>
      </p>
    </article>
  </xsl:template>

  <!-- 2021-09-27T10:00:00Z or 2021-09-27T10:00:00+00:00 (always UTC here) → 2021-09-27 10:00 UTC -->
  <xsl:template name="iso-date">
    <xsl:param name="value"/>
    <xsl:value-of select="concat(substring($value, 1, 10), ' ', substring($value, 12, 5), ' UTC')"/>
  </xsl:template>

  <!-- Mon, 27 Sep 2021 10:00:00 +0000 (fixed width, UTC) → 2021-09-27 10:00 UTC -->
  <xsl:template name="rfc822-date">
    <xsl:param name="value"/>
    <xsl:variable name="month" select="substring($value, 9, 3)"/>
    <xsl:variable name="number"
        select="string-length(substring-before('JanFebMarAprMayJunJulAugSepOctNovDec', $month)) div 3 + 1"/>
    <xsl:value-of select="concat(substring($value, 13, 4), '-', format-number($number, '00'), '-',
                                 substring($value, 6, 2), ' ', substring($value, 18, 5), ' UTC')"/>
  </xsl:template>
</xsl:stylesheet>
